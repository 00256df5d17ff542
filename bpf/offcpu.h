/* Shared by offcpu.bpf.c and csrc/ebpf/offcpu.c: the layout of the off-CPU maps.
 *
 * Time off-CPU is aggregated in the kernel, twice: per thread (count, total, min, max)
 * and per (tgid, tid, user stack, kernel stack, state, syscall). Each thread has a slot
 * of its own in an array that user space maps into its memory: the interval in
 * progress, the thread's totals and the figures of the two keys it blocked at last.
 * A switch thus needs no hash lookup while a thread keeps blocking at one or two
 * places; only when it blocks at a third do the older key's figures go to the `keys`
 * hash. User space reads the slots from memory, and the hash when the program wrote to
 * it (the `changes` counters say so); nothing is streamed
 * per context switch. The only events are "this thread took a slot" and "new user stack
 * of this process": user space reads the process's memory maps while it is still alive,
 * so a child that exits before the next sample keeps its frames. */
#ifndef DENET_BPF_OFFCPU_H
#define DENET_BPF_OFFCPU_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Thread slots (a power of two), probed from a thread's home slot on; keys of the hash
 * of last keys; (process, user stack) pairs announced to user space. Everything is
 * preallocated: sched_switch runs under the runqueue lock, where allocating could
 * deadlock on kernels before 6.1. An interval with no slot free among the probed ones,
 * or a key the full hash refused, is counted in `dropped`, never silent. */
#define DN_OC_SLOTS_SHIFT 14
#define DN_OC_SLOTS (1u << DN_OC_SLOTS_SHIFT)
#define DN_OC_PROBES 8
#define DN_OC_KEYS_MAX 16384
#define DN_OC_SEEN_MAX 8192
/* Slots of the `changes` counters, one per CPU (CPUs past it share a slot). */
#define DN_OC_CHANGE_SLOTS 256

/* Stack maps. bpf_get_stackid files a stack in the bucket its hash picks and refuses
 * (-EEXIST) a different stack whose bucket is taken, so maps are sized well above the
 * stacks a job has: user and kernel stacks have a map each. Kernel stacks keep their
 * 32 innermost frames (a scheduler path is 10 to 25 deep); user stacks 64. */
#define DN_OC_KSTACKS_MAX 16384
#define DN_OC_USTACKS_MAX 8192
#define DN_OC_KSTACK_DEPTH 32
#define DN_OC_USTACK_DEPTH 64

/* Stack id when stacks are off (offcpu_stacks=False); real ids are >= 0 and failures
 * of bpf_get_stackid are -errno. */
#define DN_OC_NO_STACK (-100000)

/* Walking a kernel stack costs about 2 us, five times the rest of the program. A
 * thread that blocks again at one of the last two places it blocked at (same system
 * call, state, user instruction, stack and frame pointers) reuses the stacks walked
 * there; every DN_OC_REWALK-th time at one place they are walked afresh. README:
 * "Stacks". */
#define DN_OC_REWALK 8

/* The outgoing task's state, reduced to what the classification needs. */
enum dn_oc_state {
    DN_OC_RUNNING = 0,         /* preempted while runnable: waiting for a CPU */
    DN_OC_INTERRUPTIBLE = 1,   /* S: sleeps, futex, poll, pipe and socket reads */
    DN_OC_UNINTERRUPTIBLE = 2, /* D: disk I/O, page faults, some kernel locks */
    DN_OC_IDLE = 3,            /* D with TASK_NOLOAD: an idle wait, not I/O */
    DN_OC_STOPPED = 4,         /* stopped, traced, frozen */
};

struct dn_oc_key {
    __u32 tgid;
    __u32 tid;
    __s32 ustack;
    __s32 kstack;
    __s32 syscall; /* -1: not in a system call */
    __u8 state;    /* enum dn_oc_state */
    __u8 timed;    /* poll/select/epoll with a finite timeout */
    __u16 pad;
};

/* A place a thread left the CPU at (its user instruction, stack and frame pointers,
 * system call and state) and the stacks walked there; `left`: how often they may still
 * be reused (DN_OC_REWALK). */
struct dn_oc_site {
    __u64 ip, sp, bp;
    __s32 ustack;
    __s32 kstack;
    __s32 syscall;
    __u8 state;
    __u8 left;
    __u16 pad;
};

/* A thread's slot. `owner` is (tgid << 32 | tid), 0 for a free slot: the program claims
 * a free one with a compare-and-swap; user space frees the slots of processes that are
 * gone, and of threads that exited (`dead`), zeroing the rest first. Only the thread's
 * own context switches write the other fields, and the scheduler serialises those.
 * The first two cache lines are what user space reads: written when an interval ends,
 * they hold the thread's totals and the two keys it blocked at last (`cur`, then
 * `alt`) with their figures; `seq` is odd while the keys change, so user space reads
 * them as one. The figures of `cur` and `alt` are absolute (the key's whole count and
 * time, like the hash's value): user space takes the larger of the two, so a key never
 * counts twice or goes missing while it moves. The rest is written when the thread
 * leaves a CPU: the interval in progress, the two places its stacks were walked at
 * last, and the names. 320 bytes. */
struct dn_oc_slot {
    __u64 owner;
    __u32 seq;
    __u32 dead; /* set at the thread's last switch: user space may free the slot */
    /* the thread's totals */
    __u64 count;
    __u64 total_ns;
    __u64 min_ns;
    __u64 max_ns;
    /* the keys the thread blocked at last, and their figures */
    struct dn_oc_key cur;
    __u64 cur_count;
    __u64 cur_total_ns;
    struct dn_oc_key alt;
    __u64 alt_count;
    __u64 alt_total_ns;
    /* the interval in progress (start_ns 0: on a CPU, or never seen leaving one) */
    __u64 start_ns;
    __u64 start_rt; /* the thread's CPU time (se.sum_exec_runtime) when it left */
    __s32 start_ustack;
    __s32 start_kstack;
    __s32 start_syscall;
    __u8 start_state;
    __u8 start_timed;
    __u16 pad0;
    /* the two places its stacks were walked at last, the latest first */
    struct dn_oc_site site[2];
    char comm[16];  /* thread name */
    char pcomm[16]; /* process name (the group leader's) */
    __u64 pad1[6];
};

/* Where the part of a slot that user space reads under seq ends. */
#define DN_OC_SLOT_FIGURES 128

struct dn_oc_val {
    __u64 count;
    __u64 total_ns;
};

struct dn_oc_seen {
    __u32 tgid;
    __s32 ustack;
};

/* Ring-buffer record: a thread took a slot (id: its index), or a process's first
 * interval with this user stack (id: the stack). */
enum dn_oc_event_kind {
    DN_OC_EV_USTACK = 0,
    DN_OC_EV_SLOT = 1,
};

struct dn_oc_event {
    __u32 tgid;
    __u32 tid;
    __s32 id;
    __u32 kind;
};

#endif
