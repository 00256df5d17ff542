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

/* Room for an array of cap children in the store's current chunk (a new chunk when it
 * is full), or NULL when no chunk can be mapped. */
static union children_hdr *chunk_alloc(struct dn_sample_store *st, size_t cap)
{
    size_t need = round_hdr(array_bytes(cap));
    struct dn_chunk *ch = st->cur;
    if (!ch || ch->used + need > ch->size) {
        size_t size = round_hdr(sizeof *ch) + need;
        size = size < DN_CHUNK_SIZE ? DN_CHUNK_SIZE : size;
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        if (st->cur)
            chunk_unref(st->cur);
        ch = st->cur = m;
        ch->refs = 1;
        ch->size = size;
        ch->used = round_hdr(sizeof *ch);
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
