#include "core/gpu_sample.h"

#include <stdlib.h>
#include <string.h>

#include "core/schema.h"

struct dn_gpu_sample *dn_gpu_sample_new_error(const char *error)
{
    struct dn_gpu_sample *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (error && !(s->error = strdup(error))) {
        free(s);
        return NULL;
    }
    return s;
}

struct dn_gpu_sample *dn_gpu_sample_dup(const struct dn_gpu_sample *src)
{
    struct dn_gpu_sample *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    *s = *src;
    s->error = NULL;
    s->devices = NULL;
    s->procs = NULL;
    if (src->error && !(s->error = strdup(src->error)))
        goto fail;
    if (src->ndevices) {
        if (!(s->devices = malloc(src->ndevices * sizeof *s->devices)))
            goto fail;
        memcpy(s->devices, src->devices, src->ndevices * sizeof *s->devices);
    }
    if (src->nprocs) {
        if (!(s->procs = malloc(src->nprocs * sizeof *s->procs)))
            goto fail;
        memcpy(s->procs, src->procs, src->nprocs * sizeof *s->procs);
    }
    return s;
fail:
    dn_gpu_sample_free(s);
    return NULL;
}

void dn_gpu_sample_free(struct dn_gpu_sample *s)
{
    if (!s)
        return;
    free(s->error);
    free(s->devices);
    free(s->procs);
    free(s);
}

void dn_gpu_sample_process(const struct dn_gpu_sample *s, pid_t pid, uint64_t *memory,
                           uint64_t *sm_util)
{
    *memory = s && s->enabled && s->memory_known ? 0 : DN_U64_NONE;
    *sm_util = s && s->enabled && s->util_known ? 0 : DN_U64_NONE;
    if (!s)
        return;
    for (uint32_t i = 0; i < s->nprocs; i++) {
        if (s->procs[i].pid != pid)
            continue;
        *memory = dn_u64_add(*memory, s->procs[i].memory);
        *sm_util = dn_u64_add(*sm_util, s->procs[i].gpu_util);
    }
}

static void max_into(uint64_t *dst, uint64_t v)
{
    if (v != DN_U64_NONE && (*dst == DN_U64_NONE || v > *dst))
        *dst = v;
}

void dn_gpu_summary_add(struct dn_gpu_summary *sum, const struct dn_gpu_sample *s,
                        uint64_t tree_memory)
{
    if (!s || !s->enabled)
        return;
    sum->samples++;
    uint64_t total = 0, used = 0;
    bool have_total = false, have_used = false;
    for (uint32_t i = 0; i < s->ndevices; i++) {
        const struct dn_gpu_device *d = &s->devices[i];
        if (d->memory_total != DN_U64_NONE) {
            total += d->memory_total;
            have_total = true;
        }
        if (d->memory_used != DN_U64_NONE) {
            used += d->memory_used;
            have_used = true;
        }
        max_into(&sum->max_system_util, d->util_gpu);
    }
    /* The installed memory does not change: a read that failed on a device leaves the
     * last complete figure standing. */
    if (have_total && (total > sum->total_memory || !sum->total_memory))
        sum->total_memory = total;
    if (have_used && used > sum->peak_used_memory)
        sum->peak_used_memory = used;
    for (uint32_t i = 0; i < s->nprocs; i++)
        max_into(&sum->max_process_util, s->procs[i].gpu_util);
    if (tree_memory != DN_U64_NONE && tree_memory > sum->peak_tree_memory)
        sum->peak_tree_memory = tree_memory;
}
