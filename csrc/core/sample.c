#include "core/sample.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ebpf/ebpf_sample.h"
#include "core/gpu_sample.h"
#include "core/grow.h"

/* The header before a children array: its extra references (0: one owner), the store's
 * chunk it lies in (NULL: malloc'd) and its capacity in children. */
union children_hdr {
    struct {
        unsigned extra_refs;
        struct dn_chunk *chunk;
        size_t cap;
    };
    max_align_t align;
};

/* A mapping of the sample store: this header, then arrays (each after its own header).
 * refs: its arrays alive, plus one while it is the store's current chunk. */
struct dn_chunk {
    unsigned refs;
    size_t size, used;
};

#define DN_CHUNK_SIZE (512u << 10)
/* Once a store has kept this much, its chunks are huge pages (see map_chunk). */
#define DN_HUGE_CHUNK_SIZE (2u << 20)

/* The last malloc'd array freed, kept for the next sample's (its pages are faulted in
 * already: a fresh 45 KB array costs 10 page faults, about 14 us each on the development
 * VM). One for the whole process, taken and given with atomic exchanges. */
static union children_hdr *spare;

static size_t round_hdr(size_t n)
{
    return (n + sizeof(union children_hdr) - 1) / sizeof(union children_hdr) *
           sizeof(union children_hdr);
}

static size_t array_bytes(size_t cap)
{
    return sizeof(union children_hdr) + cap * sizeof(struct dn_child);
}

static void chunk_unref(struct dn_chunk *ch)
{
    if (__atomic_sub_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL) == 0)
        munmap(ch, ch->size);
}

static union children_hdr *children_hdr(struct dn_child *c)
{
    return (union children_hdr *)(void *)((char *)c - sizeof(union children_hdr));
}

/* A new chunk of at least `need` bytes, its pages faulted in, or NULL. A store that has
 * kept DN_HUGE_CHUNK_SIZE already gets chunks of whole 2 MB transparent huge pages
 * (aligned, MADV_HUGEPAGE): one fault maps 2 MB. On the development VM a 4 KB page costs
 * 7 to 19 us the first time it is written, even faulted in ahead (MAP_POPULATE), and a
 * huge page about 0.3 us per 4 KB: keeping a 200-process sample (45 KB) wrote 11 such
 * pages, an eighth of the sample. Small stores keep small chunks, so that a monitor of a
 * few processes does not hold 2 MB. Where huge pages are off, the same chunk is made of
 * small pages, faulted in ahead as before. */
static struct dn_chunk *map_chunk(struct dn_sample_store *st, size_t need)
{
    size_t huge = DN_HUGE_CHUNK_SIZE, size;
    char *a;
    if (st->mapped < huge) {
        size = need < DN_CHUNK_SIZE ? DN_CHUNK_SIZE : need;
        a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                 -1, 0);
        if (a == MAP_FAILED)
            return NULL;
    } else {
        size = (need + huge - 1) / huge * huge;
        char *m = mmap(NULL, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        /* keep the aligned part only */
        a = (char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
        if (a > m)
            munmap(m, (size_t)(a - m));
        if (m + size + huge > a + size)
            munmap(a + size, (size_t)(m + size + huge - (a + size)));
        madvise(a, size, MADV_HUGEPAGE); /* a hint: refused (huge pages off) is fine */
#ifdef MADV_POPULATE_WRITE
        if (madvise(a, size, MADV_POPULATE_WRITE) != 0) /* before Linux 5.14: touch it */
#endif
            for (size_t off = 0; off < size; off += 4096)
                a[off] = 0;
    }
    st->mapped += size;
    struct dn_chunk *ch = (struct dn_chunk *)(void *)a;
    ch->refs = 1;
    ch->size = size;
    ch->used = round_hdr(sizeof *ch);
    return ch;
}

/* Room for an array of cap children in the store's current chunk (a new chunk when it
 * is full), or NULL when no chunk can be mapped. */
static union children_hdr *chunk_alloc(struct dn_sample_store *st, size_t cap)
{
    size_t need = round_hdr(array_bytes(cap));
    struct dn_chunk *ch = st->cur;
    if (!ch || ch->used + need > ch->size) {
        if (!(ch = map_chunk(st, round_hdr(sizeof *ch) + need)))
            return NULL;
        if (st->cur)
            chunk_unref(st->cur);
        st->cur = ch;
    }
    union children_hdr *h = (union children_hdr *)(void *)((char *)ch + ch->used);
    ch->used += need;
    __atomic_add_fetch(&ch->refs, 1, __ATOMIC_RELAXED);
    h->extra_refs = 0;
    h->chunk = ch;
    h->cap = cap;
    st->last = h;
    return h;
}

/* Gives the unused end of h (the store's last array, of n children) back to its chunk. */
static void chunk_trim(struct dn_sample_store *st, union children_hdr *h, size_t n)
{
    if (st->last != h || h->chunk != st->cur)
        return;
    size_t end = (size_t)((char *)h - (char *)h->chunk) + round_hdr(array_bytes(n));
    if (end < h->chunk->used)
        h->chunk->used = end;
    h->cap = n;
    st->last = NULL;
}

static union children_hdr *new_array(struct dn_sample_store *st, size_t cap)
{
    union children_hdr *h = st ? chunk_alloc(st, cap) : NULL;
    if (h)
        return h;
    h = __atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL);
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
    h->chunk = NULL;
    return h;
}

int dn_children_grow(struct dn_child **children, size_t *cap, size_t need, size_t first,
                     struct dn_sample_store *st)
{
    if (need <= *cap)
        return 0;
    size_t ncap = dn_grow_cap(*cap, need, first);
    union children_hdr *h = *children ? children_hdr(*children) : NULL;
    if (!h) {
        if (!(h = new_array(st, ncap)))
            return -ENOMEM;
        *cap = h->cap;
    } else if (h->chunk) {
        /* outgrew its room in a chunk (more processes than known): moved to the heap */
        union children_hdr *m = malloc(array_bytes(ncap));
        if (!m)
            return -ENOMEM;
        memcpy(m, h, array_bytes(*cap));
        m->chunk = NULL;
        m->cap = ncap;
        if (st && st->last == h)
            st->last = NULL;
        chunk_unref(h->chunk);
        h = m;
        *cap = ncap;
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
    /* it was the last reference */
    if (h->chunk)
        chunk_unref(h->chunk);
    else
        free(__atomic_exchange_n(&spare, h, __ATOMIC_ACQ_REL));
}

void dn_children_drop_spare(void)
{
    free(__atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL));
}

void dn_sample_store_keep(struct dn_sample_store *st, struct dn_sample *s)
{
    if (!s->children || !s->nchildren)
        return; /* nothing to move */
    union children_hdr *h = children_hdr(s->children);
    if (h->chunk) {
        chunk_trim(st, h, s->nchildren); /* built there */
        return;
    }
    if (__atomic_load_n(&h->extra_refs, __ATOMIC_ACQUIRE) != 0)
        return; /* already shared */
    union children_hdr *k = chunk_alloc(st, s->nchildren);
    if (!k)
        return; /* kept where it is */
    st->last = NULL;
    memcpy(k + 1, s->children, s->nchildren * sizeof *s->children);
    dn_children_unref(s->children);
    s->children = (struct dn_child *)(void *)(k + 1);
}

void dn_sample_store_close(struct dn_sample_store *st)
{
    if (st->cur)
        chunk_unref(st->cur);
    st->cur = NULL;
    st->last = NULL;
    st->mapped = 0;
    dn_children_drop_spare();
}

void dn_sample_clear(struct dn_sample *s)
{
    dn_children_unref(s->children);
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
