/* The eBPF part of a sample as C data (the `ebpf` part of a sample, README's eBPF section). */
#ifndef DENET_EBPF_SAMPLE_H
#define DENET_EBPF_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

struct dn_offcpu_sample;

#define DN_EBPF_NCATEGORIES 10
#define DN_EBPF_TOP_SYSCALLS 10

struct dn_syscall_count {
    uint32_t nr;
    uint64_t count;
};

struct dn_ebpf_sample {
    char *error;                 /* malloc'd sentence, or NULL */
    bool has_syscalls;
    uint64_t total;              /* cumulative for the tree since monitoring began */
    uint64_t by_category[DN_EBPF_NCATEGORIES];
    uint32_t ntop;
    struct dn_syscall_count top[DN_EBPF_TOP_SYSCALLS];
    uint64_t dropped;            /* events lost because a bounded map was full */
    double cpu_usage;            /* inputs of the analysis engine */
    double elapsed_secs;
    struct dn_offcpu_sample *offcpu; /* a reference (ebpf/offcpu_sample.h), or NULL */
};

struct dn_ebpf_sample *dn_ebpf_sample_new_error(const char *error);
struct dn_ebpf_sample *dn_ebpf_sample_dup(const struct dn_ebpf_sample *s);
void dn_ebpf_sample_free(struct dn_ebpf_sample *s);

#endif
