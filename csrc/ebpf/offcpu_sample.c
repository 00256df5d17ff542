#include "ebpf/offcpu_sample.h"

#include <stdlib.h>

#include "core/arena.h"

struct dn_offcpu_sample *dn_offcpu_sample_ref(struct dn_offcpu_sample *s)
{
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void dn_offcpu_sample_unref(struct dn_offcpu_sample *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < s->nstacks; i++)
        free(s->stacks[i].threads);
    for (size_t i = 0; i < s->nbottlenecks; i++)
        free(s->bottlenecks[i]);
    free(s->bottlenecks);
    free(s->stacks);
    free(s->threads);
    dn_arena_unref(s->arena);
    free(s);
}
