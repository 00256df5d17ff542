#include "core/sample.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ebpf/ebpf_sample.h"
#include "core/gpu_sample.h"
#include "core/grow.h"

void dn_sample_clear(struct dn_sample *s)
{
    free(s->children);
    dn_ebpf_sample_free(s->ebpf);
    dn_gpu_sample_free(s->gpu);
    memset(s, 0, sizeof *s);
}

int dn_sample_copy(struct dn_sample *dst, const struct dn_sample *src)
{
    *dst = *src;
    dst->children = NULL;
    dst->ebpf = NULL;
    dst->gpu = NULL;
    if (src->nchildren) {
        dst->children = malloc(src->nchildren * sizeof *dst->children);
        if (!dst->children)
            return -ENOMEM;
        memcpy(dst->children, src->children, src->nchildren * sizeof *dst->children);
    }
    if (src->ebpf) {
        dst->ebpf = dn_ebpf_sample_dup(src->ebpf);
        if (!dst->ebpf) {
            free(dst->children);
            dst->children = NULL;
            return -ENOMEM;
        }
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
