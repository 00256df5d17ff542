/* The `offcpu` part of a sample as C data: cumulative off-CPU time of the tree since
 * monitoring began, per thread and per stack, symbolized. Immutable once built and
 * shared by reference count between the samples, copies and summaries that hold it;
 * names and frames point into an arena (core/arena.h) that it keeps alive. */
#ifndef DENET_EBPF_OFFCPU_SAMPLE_H
#define DENET_EBPF_OFFCPU_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dn_arena;

/* Where off-CPU time went (README: "Off-CPU time", the classification rule). */
enum dn_wait_class {
    DN_WAIT_IO,    /* uninterruptible (D) waits */
    DN_WAIT_LOCK,  /* futex */
    DN_WAIT_SLEEP, /* nanosleep, clock_nanosleep, timed poll/select/epoll */
    DN_WAIT_CPU,   /* preempted while runnable */
    DN_WAIT_OTHER, /* everything else: pipes, sockets, untimed polls, children */
    DN_WAIT_NCLASSES
};

struct dn_frame {
    uint64_t address;
    const char *symbol;          /* never NULL: "[unknown]" when it cannot be named */
    const char *source_location; /* "file:line", or NULL */
};

struct dn_offcpu_thread {
    uint32_t pid, tid;
    uint64_t total_ns, count, min_ns, max_ns;
    const char *thread_name, *process_name; /* "" when unknown */
};

struct dn_offcpu_stack {
    uint64_t total_ns, count;
    uint32_t pid, tid; /* the thread with the most time on this stack */
    const char *process_name, *thread_name;
    int32_t user_stack_id, kernel_stack_id;
    uint32_t state;  /* enum dn_oc_state (bpf/offcpu.h) of its largest part */
    int32_t syscall; /* -1: not in a system call */
    enum dn_wait_class wait;
    uint32_t nthreads;
    uint32_t (*threads)[2]; /* [pid, tid], owned */
    uint32_t nuser, nkernel;
    const struct dn_frame *user, *kernel; /* innermost first */
    const char *user_stack_error, *kernel_stack_error; /* NULL, or why */
};

struct dn_offcpu_sample {
    int refs;
    struct dn_arena *arena;
    bool stacks_enabled;
    uint64_t total_ns, events, min_ns, max_ns;
    uint64_t class_ns[DN_WAIT_NCLASSES];
    uint64_t dropped; /* intervals lost or left out of the stack keys: maps full */
    size_t nthreads;
    struct dn_offcpu_thread *threads; /* most off-CPU time first */
    size_t nstacks;
    struct dn_offcpu_stack *stacks;   /* heaviest first */
    size_t nbottlenecks;
    char **bottlenecks;
};

struct dn_offcpu_sample *dn_offcpu_sample_ref(struct dn_offcpu_sample *s);
void dn_offcpu_sample_unref(struct dn_offcpu_sample *s); /* NULL is fine */

#endif
