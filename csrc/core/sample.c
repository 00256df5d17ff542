#include "core/sample.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ebpf/ebpf_sample.h"
#include "core/gpu_sample.h"
#include "core/grow.h"

/* The header before a children array: its extra references (0: one owner). */
union children_hdr {
    unsigned extra_refs;
    max_align_t align;
};

static union children_hdr *children_hdr(struct dn_child *c)
{
    return (union children_hdr *)(void *)((char *)c - sizeof(union children_hdr));
}

int dn_children_grow(struct dn_child **children, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : first;
    while (ncap < need)
        ncap *= 2;
    union children_hdr *h = *children ? children_hdr(*children) : NULL;
    h = realloc(h, sizeof *h + ncap * sizeof **children);
    if (!h)
        return -ENOMEM;
    if (!*children)
        h->extra_refs = 0;
    *children = (struct dn_child *)(void *)(h + 1);
    *cap = ncap;
    return 0;
}

void dn_children_unref(struct dn_child *children)
{
    if (!children)
        return;
    union children_hdr *h = children_hdr(children);
    if (__atomic_fetch_sub(&h->extra_refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(h); /* it was the last reference */
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
