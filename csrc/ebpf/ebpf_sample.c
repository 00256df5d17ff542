#include "ebpf/ebpf_sample.h"

#include <stdlib.h>
#include <string.h>

#include "ebpf/offcpu_sample.h"

struct dn_ebpf_sample *dn_ebpf_sample_new_error(const char *error)
{
    struct dn_ebpf_sample *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->error = strdup(error);
    if (!s->error) {
        free(s);
        return NULL;
    }
    return s;
}

struct dn_ebpf_sample *dn_ebpf_sample_dup(const struct dn_ebpf_sample *src)
{
    struct dn_ebpf_sample *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    *s = *src;
    if (src->error && !(s->error = strdup(src->error))) {
        free(s);
        return NULL;
    }
    dn_offcpu_sample_ref(s->offcpu); /* immutable: shared, not copied */
    return s;
}

void dn_ebpf_sample_free(struct dn_ebpf_sample *s)
{
    if (!s)
        return;
    free(s->error);
    dn_offcpu_sample_unref(s->offcpu);
    free(s);
}
