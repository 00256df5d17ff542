#include "core/sample.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ebpf/ebpf_sample.h"
#include "core/gpu_sample.h"
#include "core/grow.h"

/* The header before a children array: its extra references (0: one owner), and the
 * store's chunk it lies in (NULL: malloc'd). */
union children_hdr {
    struct {
        unsigned extra_refs;
        struct dn_chunk *chunk;
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

static size_t round_hdr(size_t n)
{
    return (n + sizeof(union children_hdr) - 1) / sizeof(union children_hdr) *
           sizeof(union children_hdr);
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

int dn_children_grow(struct dn_child **children, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = dn_grow_cap(*cap, need, first);
    union children_hdr *h = *children ? children_hdr(*children) : NULL;
    h = realloc(h, sizeof *h + ncap * sizeof **children);
    if (!h)
        return -ENOMEM;
    if (!*children) {
        h->extra_refs = 0;
        h->chunk = NULL;
    }
    *children = (struct dn_child *)(void *)(h + 1);
    *cap = ncap;
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
        free(h);
}

void dn_sample_store_keep(struct dn_sample_store *st, struct dn_sample *s)
{
    if (!s->children || !s->nchildren || children_hdr(s->children)->chunk ||
        __atomic_load_n(&children_hdr(s->children)->extra_refs, __ATOMIC_ACQUIRE) != 0)
        return; /* nothing to move, or already shared */
    size_t need = sizeof(union children_hdr) + s->nchildren * sizeof *s->children;
    struct dn_chunk *ch = st->cur;
    if (!ch || ch->used + need > ch->size) {
        size_t size = round_hdr(sizeof *ch) + need;
        size = size < DN_CHUNK_SIZE ? DN_CHUNK_SIZE : size;
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED)
            return; /* kept where it is */
        if (st->cur)
            chunk_unref(st->cur);
        ch = st->cur = m;
        ch->refs = 1;
        ch->size = size;
        ch->used = round_hdr(sizeof *ch);
    }
    union children_hdr *h = (union children_hdr *)(void *)((char *)ch + ch->used);
    ch->used += round_hdr(need);
    __atomic_add_fetch(&ch->refs, 1, __ATOMIC_RELAXED);
    h->extra_refs = 0;
    h->chunk = ch;
    memcpy(h + 1, s->children, s->nchildren * sizeof *s->children);
    dn_children_unref(s->children);
    s->children = (struct dn_child *)(void *)(h + 1);
}

void dn_sample_store_close(struct dn_sample_store *st)
{
    if (st->cur)
        chunk_unref(st->cur);
    st->cur = NULL;
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
