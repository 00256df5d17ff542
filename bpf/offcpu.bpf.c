// SPDX-License-Identifier: GPL-2.0
/* Off-CPU time of the monitored process tree, aggregated in the kernel.
 *
 * One program on the BTF-typed sched_switch tracepoint. Both sides of a switch are
 * checked against the tracker's `live` bitmap before anything else, so a context
 * switch between untracked threads costs two bit tests. At switch-out of a tracked
 * thread the interval's start is written into the thread's slot (offcpu.h): the time,
 * the task state, the system call it is blocked in and, when stacks are on, its user
 * and kernel stack ids (`current` is still the outgoing thread here, so
 * bpf_get_stackid walks its stacks). At switch-in the elapsed time is added to the
 * thread's totals and to the figures of its (thread, stacks, state, syscall) key, kept
 * in the slot while the thread blocks at the same place. Only the thread's own
 * switches write its slot, and the scheduler serialises those, so plain additions are
 * exact. Times are the scheduler's own clock (sched_clock_now). */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "offcpu.h"
#include "live_map.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Task state bits (include/linux/sched.h; stable since 2.6). */
#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2
#define TASK_STOPPED_TRACED 0xc
#define TASK_DEAD 0x80
#define TASK_NOLOAD 0x400

/* Set before load: offcpu_stacks=False keeps the times and skips the stack walks. */
const volatile bool with_stacks = true;

/* Set from user space at any time (the skeleton's mmapped .bss). */
__u32 excluded_tid = 0; /* the sampler thread of a monitor that watches its own process */
__u32 only_tgid = 0;    /* this process only (include_children=False); 0 = all */

/* Written here, read by user space. */
__u64 dropped = 0;      /* intervals lost: no slot free among those probed */
__u64 dropped_keys = 0; /* intervals in the thread totals but not in a stack key: keys full */
__u64 lost_events = 0;  /* new-stack notices the ring buffer had no room for (retried) */
__u64 lost_slots = 0;   /* slot notices it had no room for: user space scans the slots */
__u64 unseen_ends = 0;  /* intervals whose end the kernel did not report (see switch_out) */
/* Bumped by a CPU once it has added an interval to the slots (n) or written a key to
 * the hash (keys), in its own cache line with a plain add: user space reads the slots
 * only when n's sum moved and the hash only when keys' sum moved (both at least once a
 * second), so a tree that is not switching costs no map read, and one whose threads
 * each wait at one or two places costs no hash read. */
struct {
    __u64 n;
    __u64 keys;
    __u64 pad[6];
} changes[DN_OC_CHANGE_SLOTS] = {};

/* Mapped by user space, which reads the slots from memory (no system call). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, DN_OC_SLOTS);
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, struct dn_oc_slot);
} slots SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, DN_OC_KEYS_MAX);
    __type(key, struct dn_oc_key);
    __type(value, struct dn_oc_val);
} keys SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, DN_OC_KSTACKS_MAX);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, DN_OC_KSTACK_DEPTH * sizeof(__u64));
} kstacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, DN_OC_USTACKS_MAX);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, DN_OC_USTACK_DEPTH * sizeof(__u64));
} ustacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, DN_OC_SEEN_MAX);
    __type(key, struct dn_oc_seen);
    __type(value, __u8);
} seen SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* Kernels before 5.14 call the field `state`. */
struct task_struct___o {
    long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_state(struct task_struct *t)
{
    if (bpf_core_field_exists(t->__state))
        return t->__state; /* a BTF pointer: a plain load, no helper call */
    return (__u32)BPF_CORE_READ((struct task_struct___o *)t, state);
}

/* The state class of a task leaving the CPU, or -1 for a thread that is exiting (it
 * never comes back, so no interval starts). The state carries flag bits (freezable,
 * wakekill, noload): only the low bits say how it sleeps. */
static __always_inline int state_class(bool preempt, __u32 st)
{
    if (st & TASK_DEAD)
        return -1;
    if (preempt || st == 0)
        return DN_OC_RUNNING;
    if (st & TASK_INTERRUPTIBLE)
        return DN_OC_INTERRUPTIBLE;
    if (st & TASK_UNINTERRUPTIBLE)
        return st & TASK_NOLOAD ? DN_OC_IDLE : DN_OC_UNINTERRUPTIBLE;
    return DN_OC_STOPPED;
}

/* Now, as the scheduler's clock on this CPU: rq->clock, which __schedule has just
 * brought up to date, reached through the running task's run queue (`cur` runs on this
 * CPU). It is the clock and the arithmetic of the kernel's own sleep and block times
 * (schedstats' sleep_start/block_start: one CPU's rq clock at dequeue, another's at
 * wakeup, a negative difference taken as 0). A load where bpf_ktime_get_ns costs a
 * clock-source read, 85 of 155 ns of this program per switch on a kvm-clock VM. Kernels
 * built without group scheduling have no run-queue pointer in the task: the monotonic
 * clock there. Within one kernel every time comes from the same one of the two. */
static __always_inline __u64 sched_clock_now(struct task_struct *cur)
{
    if (bpf_core_field_exists(cur->se.cfs_rq) && bpf_core_field_exists(struct cfs_rq, rq))
        return cur->se.cfs_rq->rq->clock; /* BTF pointers: plain loads */
    return bpf_ktime_get_ns();
}

/* Queues one event for user space; false (counted in *lost) when the ring buffer is
 * full. */
static __always_inline bool notify(__u32 tgid, __u32 tid, __s32 id, __u32 kind, __u64 *lost)
{
    struct dn_oc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        __sync_fetch_and_add(lost, 1);
        return false;
    }
    e->tgid = tgid;
    e->tid = tid;
    e->id = id;
    e->kind = kind;
    bpf_ringbuf_submit(e, 0);
    return true;
}

/* Tells user space, once per (process, user stack), to read the process's memory maps
 * while it lives. Marked seen only once the notice is queued, so a full ring buffer
 * means a later retry, not a stack that is never symbolized. */
static __always_inline void announce(__u32 tgid, __u32 tid, __s32 ustack)
{
    struct dn_oc_seen s = {.tgid = tgid, .ustack = ustack};
    if (bpf_map_lookup_elem(&seen, &s))
        return;
    if (!notify(tgid, tid, ustack, DN_OC_EV_USTACK, &lost_events))
        return;
    __u8 one = 1;
    bpf_map_update_elem(&seen, &s, &one, BPF_ANY); /* full: user space dedups */
}

/* Where a task left user space: the system call it is blocked in (-1: none, as when
 * it was preempted in user space), whether that is a poll/select/epoll wait with a
 * finite timeout, and its user registers (0 where they cannot be read). */
struct site {
    __s32 nr;
    __u8 timed;
    __u64 ip, sp, bp;
};

static __always_inline void user_site(struct task_struct *t, int cls, struct site *s)
{
    s->nr = -1;
    s->timed = 0;
    s->ip = s->sp = s->bp = 0;
    if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
        return; /* before 5.15 */
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
    if (!regs)
        return;
#if defined(__TARGET_ARCH_x86)
    s->ip = regs->ip;
    s->sp = regs->sp;
    s->bp = regs->bp;
    __s32 nr = (__s32)regs->orig_ax;
    s->nr = nr;
    __u8 *timed = &s->timed;
    if (cls != DN_OC_INTERRUPTIBLE)
        return;
    switch (nr) {
    case 7: /* poll: timeout in ms, -1 waits forever */
        *timed = (int)PT_REGS_PARM3_CORE_SYSCALL(regs) >= 0;
        break;
    case 232: /* epoll_wait */
    case 281: /* epoll_pwait */
        *timed = (int)PT_REGS_PARM4_CORE_SYSCALL(regs) >= 0;
        break;
    case 271: /* ppoll: struct timespec *, NULL waits forever */
        *timed = PT_REGS_PARM3_CORE_SYSCALL(regs) != 0;
        break;
    case 441: /* epoll_pwait2 */
        *timed = PT_REGS_PARM4_CORE_SYSCALL(regs) != 0;
        break;
    case 23:  /* select: struct timeval * */
    case 270: /* pselect6 */
        *timed = PT_REGS_PARM5_CORE_SYSCALL(regs) != 0;
        break;
    }
#elif defined(__TARGET_ARCH_arm64)
    (void)cls;
    s->nr = (__s32)BPF_CORE_READ(regs, syscallno);
#else
    (void)cls;
#endif
}

static __always_inline bool same_site(const struct dn_oc_site *t, const struct site *s, int cls)
{
    return t->left && t->ip == s->ip && t->sp == s->sp && t->bp == s->bp &&
           t->syscall == s->nr && t->state == cls;
}

/* The stacks of a thread leaving the CPU: those walked last at the same place, when it
 * is one of the last two (DN_OC_REWALK), or walked now. site[0] is the latest place. */
static __always_inline void stacks_of(void *ctx, struct dn_oc_slot *t, int cls,
                                      const struct site *s, __u32 tgid, __u32 tid, __s32 *us,
                                      __s32 *ks)
{
    if (s->ip && same_site(&t->site[0], s, cls)) {
        t->site[0].left--;
        *us = t->site[0].ustack;
        *ks = t->site[0].kstack;
        return;
    }
    if (s->ip && same_site(&t->site[1], s, cls)) {
        struct dn_oc_site back = t->site[1];
        back.left--;
        t->site[1] = t->site[0];
        t->site[0] = back;
        *us = back.ustack;
        *ks = back.kstack;
        return;
    }
    *ks = bpf_get_stackid(ctx, &kstacks, 0);
    *us = bpf_get_stackid(ctx, &ustacks, BPF_F_USER_STACK);
    if (*us >= 0)
        announce(tgid, tid, *us);
    t->site[1] = t->site[0];
    struct dn_oc_site *n = &t->site[0];
    n->ip = s->ip;
    n->sp = s->sp;
    n->bp = s->bp;
    n->syscall = s->nr;
    n->state = (__u8)cls;
    n->ustack = *us;
    n->kstack = *ks;
    /* a failed walk is not reused */
    n->left = *us >= 0 && *ks >= 0 ? DN_OC_REWALK - 1 : 0;
}

/* A thread's first slot to look at: tids are dense, so a multiplicative hash spreads
 * neighbours over the array. */
static __always_inline __u32 slot_home(__u32 tid)
{
    return (tid * 2654435761u) >> (32 - DN_OC_SLOTS_SHIFT);
}

/* The slot thread `me` owns among the DN_OC_PROBES from its home on, or NULL; *free_idx
 * gets the first free one seen (DN_OC_SLOTS when none). Array lookups are inlined by
 * the verifier: a few instructions each, no hashing. */
static __always_inline struct dn_oc_slot *find_slot(__u64 me, __u32 home, __u32 *free_idx)
{
    *free_idx = DN_OC_SLOTS;
#pragma unroll
    for (int i = 0; i < DN_OC_PROBES; i++) {
        __u32 idx = (home + i) & (DN_OC_SLOTS - 1);
        struct dn_oc_slot *s = bpf_map_lookup_elem(&slots, &idx);
        if (!s)
            return NULL;
        __u64 owner = *(volatile __u64 *)&s->owner;
        if (owner == me)
            return s;
        if (!owner && *free_idx == DN_OC_SLOTS)
            *free_idx = idx;
    }
    return NULL;
}

/* The thread's slot, taking a free one the first time. Two threads may race for one
 * free slot (compare-and-swap decides): the loser looks again. */
static __always_inline struct dn_oc_slot *own_slot(__u32 tgid, __u32 tid)
{
    __u64 me = (__u64)tgid << 32 | tid;
    __u32 home = slot_home(tid), idx;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct dn_oc_slot *s = find_slot(me, home, &idx);
        if (s)
            return s;
        if (idx >= DN_OC_SLOTS)
            return NULL;
        s = bpf_map_lookup_elem(&slots, &idx);
        if (!s)
            return NULL;
        if (__sync_val_compare_and_swap(&s->owner, 0, me) == 0) {
            /* user space learns of it here; a full ring buffer makes it scan */
            notify(tgid, tid, (__s32)idx, DN_OC_EV_SLOT, &lost_slots);
            return s;
        }
    }
    return NULL;
}

static __always_inline void changed(void)
{
    changes[bpf_get_smp_processor_id() & (DN_OC_CHANGE_SLOTS - 1)].n++;
}

/* Bumped before the slot's seq turns even again: user space, which reads the counters
 * after the slots, then knows of every key that left a slot it read. */
static __always_inline void keys_changed(void)
{
    changes[bpf_get_smp_processor_id() & (DN_OC_CHANGE_SLOTS - 1)].keys++;
}

/* Writes key k's absolute figures to the hash (false: the hash is full, counted). */
static __always_inline bool to_hash(const struct dn_oc_key *k, __u64 count, __u64 total_ns)
{
    struct dn_oc_val val = {.count = count, .total_ns = total_ns};
    struct dn_oc_key kc = *k;
    struct dn_oc_val *v = bpf_map_lookup_elem(&keys, &kc);
    if (v) {
        *v = val;
        return true;
    }
    if (bpf_map_update_elem(&keys, &kc, &val, BPF_NOEXIST) == 0)
        return true;
    __sync_fetch_and_add(&dropped_keys, count);
    return false;
}

static __always_inline bool same_key(const struct dn_oc_key *a, const struct dn_oc_key *b)
{
    return a->ustack == b->ustack && a->kstack == b->kstack && a->syscall == b->syscall &&
           a->state == b->state && a->timed == b->timed;
}

/* Ends thread t's interval in progress at `end`: its totals and its key's figures. */
static __always_inline void end_interval(struct dn_oc_slot *t, __u32 tgid, __u32 tid, __u64 end)
{
    __u64 d = end - t->start_ns;
    t->start_ns = 0;
    if ((__s64)d < 0)
        d = 0; /* two CPUs' clocks a little apart: the interval was shorter than that */
    t->count += 1;
    t->total_ns += d;
    if (t->count == 1 || d < t->min_ns)
        t->min_ns = d;
    if (d > t->max_ns)
        t->max_ns = d;

    struct dn_oc_key key = {
        .tgid = tgid,
        .tid = tid,
        .ustack = t->start_ustack,
        .kstack = t->start_kstack,
        .syscall = t->start_syscall,
        .state = t->start_state,
        .timed = t->start_timed,
    };
    if (t->cur_count && same_key(&t->cur, &key)) { /* the common case: no hash touched */
        t->cur_count += 1;
        t->cur_total_ns += d;
        changed();
        return;
    }
    /* Another place. seq is odd while cur and alt change. */
    __sync_fetch_and_add(&t->seq, 1);
    struct dn_oc_key prev = t->cur;
    __u64 prev_count = t->cur_count, prev_total = t->cur_total_ns;
    if (t->alt_count && same_key(&t->alt, &key)) {
        /* the place before this one: the two change places */
        t->cur = t->alt;
        t->cur_count = t->alt_count + 1;
        t->cur_total_ns = t->alt_total_ns + d;
    } else {
        /* A third place: the older key's figures go to the hash (absolute, so writing
         * them again is harmless), and this key's are taken from it. */
        if (t->alt_count && to_hash(&t->alt, t->alt_count, t->alt_total_ns))
            keys_changed();
        struct dn_oc_val *v = bpf_map_lookup_elem(&keys, &key);
        t->cur = key;
        t->cur_count = (v ? v->count : 0) + 1;
        t->cur_total_ns = (v ? v->total_ns : 0) + d;
    }
    t->alt = prev;
    t->alt_count = prev_count;
    t->alt_total_ns = prev_total;
    __sync_fetch_and_add(&t->seq, 1);
    changed();
}

/* A thread that is running (leaving the CPU, or exiting) while its last interval never
 * ended: the kernel ran it without a sched_switch event (seen on some VMs' kernels,
 * rarely). It has run for rt - start_rt since; the interval ended that long before now. */
static __always_inline void end_unseen(struct dn_oc_slot *t, __u32 tgid, __u32 tid,
                                       struct task_struct *p)
{
    if (!t->start_ns)
        return;
    __u64 rt = p->se.sum_exec_runtime;
    /* at exit the rq clock may be a tick old: the end then comes out earlier, never
     * before the start */
    __u64 ran = rt - t->start_rt, now = sched_clock_now(p);
    end_interval(t, tgid, tid, ran < now - t->start_ns ? now - ran : t->start_ns);
    __sync_fetch_and_add(&unseen_ends, 1);
}

/* `cur` is the task leaving this CPU, whose run queue gives the time. */
static __always_inline void switch_in(struct task_struct *n, struct task_struct *cur,
                                      __u32 tgid, __u64 *now)
{
    __u32 tid = n->pid, idx;
    struct dn_oc_slot *t = find_slot((__u64)tgid << 32 | tid, slot_home(tid), &idx);
    if (!t || !t->start_ns)
        return;
    if (!*now)
        *now = sched_clock_now(cur);
    end_interval(t, tgid, tid, *now);
}

static __always_inline void switch_out(void *ctx, bool preempt, struct task_struct *p,
                                       __u32 tgid, __u64 *now)
{
    __u32 tid = p->pid;
    if (tid == *(volatile __u32 *)&excluded_tid)
        return;
    __u32 only = *(volatile __u32 *)&only_tgid;
    if (only && tgid != only)
        return;
    int cls = state_class(preempt, task_state(p));
    if (cls < 0) {
        /* The thread is exiting: this was its last switch, its figures are final and
         * user space may give its slot to another thread. */
        __u32 idx;
        struct dn_oc_slot *t = find_slot((__u64)tgid << 32 | tid, slot_home(tid), &idx);
        if (t)
            *(volatile __u32 *)&t->dead = 1;
        return;
    }

    struct dn_oc_slot *t = own_slot(tgid, tid);
    if (!t) {
        __sync_fetch_and_add(&dropped, 1);
        return;
    }
    /* Names now, while the task exists: a child that exits before the next sample
     * keeps them. Re-read each time, as exec and prctl change them. */
    __builtin_memcpy(t->comm, p->comm, sizeof(t->comm));
    __builtin_memcpy(t->pcomm, p->group_leader->comm, sizeof(t->pcomm));

    end_unseen(t, tgid, tid, p);
    t->start_rt = p->se.sum_exec_runtime;

    struct site site;
    user_site(p, cls, &site);
    __s32 us = DN_OC_NO_STACK, ks = DN_OC_NO_STACK;
    if (with_stacks)
        stacks_of(ctx, t, cls, &site, tgid, tid, &us, &ks);
    t->start_ustack = us;
    t->start_kstack = ks;
    t->start_syscall = site.nr;
    t->start_state = (__u8)cls;
    t->start_timed = site.timed;
    *now = sched_clock_now(p); /* the time __schedule began, not after the stack walks */
    t->start_ns = *now;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(dn_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
    __u64 now = 0;
    __u32 ptgid = prev->tgid;
    if (dn_is_live(ptgid))
        switch_out(ctx, preempt, prev, ptgid, &now);
    __u32 ntgid = next->tgid;
    if (dn_is_live(ntgid))
        switch_in(next, prev, ntgid, &now);
    return 0;
}

/* A thread of the tree exits: it is running, so its last interval has ended, seen or
 * not (the switch after a process's last thread exits is not followed: the tracker has
 * let the process go by then). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(dn_oc_exit, struct task_struct *p)
{
    __u32 tgid = p->tgid, tid = p->pid, idx;
    struct dn_oc_slot *t = find_slot((__u64)tgid << 32 | tid, slot_home(tid), &idx);
    if (t)
        end_unseen(t, tgid, tid, p);
    return 0;
}
