#include "ebpf/offcpu.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/offcpu.h"
#include "bpf/tracked.h"
#include "core/arena.h"
#include "core/grow.h"
#include "core/htab.h"
#include "core/jsonbuf.h"
#include "ebpf/common.h"
#include "ebpf/offcpu_analysis.h"
#include "ebpf/syscall_table.h"
#include "offcpu.skel.h"
#include "symbolize/kallsyms.h"
#include "symbolize/usym.h"

#define TOP_STACKS 10          /* stack_traces in a sample */
#define MAX_BOTTLENECKS 5      /* sentences in a sample */
#define BOTTLENECK_MIN_PCT 10.0
#define MAX_STACK_THREADS 64   /* [pid, tid] pairs listed per stack */
#define MAX_THREAD_STATS 512   /* threads in a sample's thread_stats (the heaviest) */

_Static_assert(sizeof(struct dn_oc_slot) == 320, "bpf/offcpu.h: a slot is five cache lines");
_Static_assert(offsetof(struct dn_oc_slot, start_ns) == DN_OC_SLOT_FIGURES,
               "bpf/offcpu.h: the figures are the first two cache lines");

/* A symbolized stack, in the arena: immutable once made. */
struct symstack {
    uint32_t n;
    const struct dn_frame *frames; /* innermost first */
    const char *error;
};

/* Accumulated figures. The first bytes are the table key; gen 0 means "the entry is
 * live in the kernel map", another value that the process exited and its entries were
 * moved out (so a later process that reuses the pid starts afresh). */
struct acc_thread {
    uint32_t tgid, tid, gen; /* key */
    uint32_t pad;
    uint64_t count, total_ns, min_ns, max_ns;
    /* What earlier threads with this tid in this process had, when their slots were
     * freed (a tid is reused only after the pid space wraps) */
    uint64_t base_count, base_total_ns, base_min_ns, base_max_ns;
    const char *comm, *pcomm;
};

struct group;

struct acc_key {
    struct dn_oc_key k;
    uint32_t gen; /* key: k and gen */
    uint32_t pad;
    uint64_t count, total_ns;
    uint64_t base_count, base_total_ns; /* as for acc_thread */
    struct symstack *us, *ks;
    struct group *gw, *gs; /* its wait group and (with stacks) its stack group */
    struct acc_key *next_in_gs; /* the key made before it in the same stack group */
    enum dn_wait_class cls;
};

/* Keys grouped per (process, user stack, kernel stack) for stack_traces, or per
 * (thread, class, syscall) for bottlenecks; kept up to date as keys grow, so a sample
 * only picks the heaviest. */
struct group {
    uint32_t tgid, gen, tid;
    int32_t a, b; /* ustack and kstack, or class and syscall */
    uint32_t pad; /* key ends here */
    uint64_t total_ns, count;
    struct acc_key *heaviest;
    struct acc_key *keys; /* a stack group's keys, newest first (through next_in_gs) */
};

/* What was taken from a slot last time. Every figure of a slot moves with its count
 * (an interval ended), so a slot whose owner and count are as they were has nothing
 * new; and the records its figures went to are known, so no table is searched for them
 * while its thread keeps waiting at the same places. Reset when the slot is freed. */
struct slot_view {
    uint64_t owner, count;
    struct acc_thread *th;
    struct acc_key *cur, *alt;
};

struct ucache_ent {
    uint32_t tgid;
    int32_t id; /* key */
    struct symstack *s;
};

struct kcache_ent {
    int32_t id; /* key */
    uint32_t pad;
    struct symstack *s;
};

struct dn_offcpu {
    struct offcpu_bpf *skel; /* NULL once detached */
    struct ring_buffer *rb;
    int keys_fd, kstacks_fd, ustacks_fd, seen_fd, tracked_fd;
    struct dn_oc_slot *slots; /* the program's slot array, mapped (NULL once detached) */
    size_t slots_len;
    uint32_t *known; /* the slots taken, as the program announced them */
    size_t nknown, known_cap;
    uint64_t known_bits[DN_OC_SLOTS / 64];
    uint64_t dead_seen[DN_OC_SLOTS / 64]; /* slots seen `dead` once (freed the next time) */
    uint64_t lost_slots; /* the program's count of unannounced slots, at the last scan */
    bool stacks;
    uint32_t only_tgid;
    uint32_t next_gen;
    int64_t next_fold_ns;
    struct slot_view *views; /* one per slot */
    struct dn_change_gate slots_gate; /* the program's `changes[].n`: intervals added */
    struct dn_change_gate keys_gate;  /* its `changes[].keys`: keys written to the hash */
    size_t change_slots;
    uint64_t dropped;
    uint64_t class_ns[DN_WAIT_NCLASSES]; /* off-CPU time of all keys, by wait class */
    struct dn_arena *arena;
    struct dn_usym *usym;
    struct dn_htab threads, keys, ucache, kcache;
    struct dn_htab gwait, gstack; /* struct group, by wait and by stack */
    /* The same records of exited processes (their figures final), apart, so that a
     * sample's walks over the live ones do not grow with every process a run saw. What
     * a sample shows of them is kept as they retire: */
    struct dn_htab old_threads, old_keys, old_gwait, old_gstack;
    struct {
        uint64_t total_ns, count, min_ns, max_ns;          /* of their threads */
        struct acc_thread *top[MAX_THREAD_STATS];          /* the heaviest, heaviest first */
        size_t ntop;
        uint64_t wait_ns;                                  /* of their wait groups */
        struct group *wait_top[MAX_BOTTLENECKS], *stack_top[TOP_STACKS];
        size_t nwait_top, nstack_top;
    } old;

    struct dn_oc_event *pending; /* announced stacks not yet symbolized */
    size_t npending, pending_cap;
    uint32_t *maps_read; /* processes whose maps were read in this round */
    size_t nmaps_read, maps_read_cap;

    struct dn_map_buf kbuf, trbuf, sbuf;
    /* The key hash as read the time before kbuf (valid with kprev_ok): an entry at the
     * same place with the same figures was taken then, and is skipped. Dropped whenever
     * a key's base moves (free_dead_slots, fold), the one thing that would make taking
     * the same figures again do something. */
    struct dn_map_buf kprev;
    bool kprev_ok;
    uint64_t ips[DN_OC_USTACK_DEPTH > DN_OC_KSTACK_DEPTH ? DN_OC_USTACK_DEPTH : DN_OC_KSTACK_DEPTH];

    uint64_t version; /* changes whenever what a snapshot shows may have changed */
    uint64_t last_version;
    struct dn_offcpu_sample *last;
    const char *empty;
};

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ---- symbolization ----------------------------------------------------------------- */

static const char *intern(struct dn_offcpu *o, const char *s)
{
    const char *r = dn_arena_intern(o->arena, s);
    return r ? r : "[out of memory]";
}

static struct symstack *new_stack(struct dn_offcpu *o, uint32_t n)
{
    struct symstack *s = dn_arena_alloc(o->arena, sizeof *s);
    struct dn_frame *f = n ? dn_arena_alloc(o->arena, n * sizeof *f) : NULL;
    if (!s || (n && !f))
        return NULL;
    s->n = n;
    s->frames = f;
    return s;
}

/* A stack that bpf_get_stackid could not record (-errno). */
static struct symstack *failed_stack(struct dn_offcpu *o, int32_t id, bool user)
{
    struct symstack *s = new_stack(o, 0);
    if (!s)
        return NULL;
    char buf[256];
    if (id == -EEXIST)
        snprintf(buf, sizeof buf, "the kernel's stack map held another stack in this one's "
                                  "slot (hash collision), so this %s stack was not kept",
                 user ? "user" : "kernel");
    else if (id == -EFAULT && user)
        snprintf(buf, sizeof buf, "the user stack could not be read (EFAULT)");
    else if (id == -ENOMEM || id == -E2BIG)
        snprintf(buf, sizeof buf, "the kernel's stack map is full (%d stacks), so this stack "
                                  "was not kept", user ? DN_OC_USTACKS_MAX : DN_OC_KSTACKS_MAX);
    else
        snprintf(buf, sizeof buf, "the kernel could not record this %s stack: %s",
                 user ? "user" : "kernel", strerror(-id));
    s->error = intern(o, buf);
    return s;
}

/* Reads a stack's addresses; the number of frames, or -1 when it is not in the map. */
static int read_ips(struct dn_offcpu *o, int32_t id, bool user)
{
    if (!o->skel || bpf_map_lookup_elem(user ? o->ustacks_fd : o->kstacks_fd, &id, o->ips) != 0)
        return -1;
    int n = 0, depth = user ? DN_OC_USTACK_DEPTH : DN_OC_KSTACK_DEPTH;
    while (n < depth && o->ips[n])
        n++;
    return n;
}

static struct symstack *missing_stack(struct dn_offcpu *o)
{
    struct symstack *s = new_stack(o, 0);
    if (s)
        s->error = intern(o, "the stack was no longer in the kernel's stack map");
    return s;
}

static bool maps_read_now(struct dn_offcpu *o, uint32_t tgid)
{
    for (size_t i = 0; i < o->nmaps_read; i++)
        if (o->maps_read[i] == tgid)
            return true;
    return false;
}

/* Reads process tgid's memory maps again, once per round at most (gone: the maps read
 * before stay). */
static void reread_maps(struct dn_offcpu *o, uint32_t tgid)
{
    if (maps_read_now(o, tgid))
        return;
    dn_usym_read_maps(o->usym, (pid_t)tgid);
    if (!dn_grow(&o->maps_read, &o->maps_read_cap, o->nmaps_read + 1, sizeof(uint32_t), 16))
        o->maps_read[o->nmaps_read++] = tgid;
}

/* Names the n frames of o->ips (process tgid) into s. True when an address lay outside
 * every mapping read (or none was read): code mapped since, unless the frame-pointer
 * walk went astray. */
static bool name_frames(struct dn_offcpu *o, uint32_t tgid, int n, struct symstack *s)
{
    struct dn_frame *f = (struct dn_frame *)s->frames;
    bool missed = false;
    int unnamed_no_maps = 0;
    s->n = (uint32_t)n;
    s->error = NULL;
    for (int i = 0; i < n; i++) {
        uint64_t ip = o->ips[i];
        struct dn_usym_frame r;
        /* Frames after the first are return addresses: look up the call itself. */
        dn_usym_resolve(o->usym, (pid_t)tgid, ip, i ? ip - 1 : ip, &r);
        missed |= r.status == DN_USYM_UNMAPPED || r.status == DN_USYM_NO_MAPS;
        if (i && r.status == DN_USYM_UNMAPPED) {
            /* A return address outside all code: the frame-pointer walk went astray
             * (code built without frame pointers); what follows is noise. */
            s->n = (uint32_t)i;
            break;
        }
        char buf[512];
        const char *name = r.symbol;
        if (!name) {
            if (r.module && (r.status == DN_USYM_NO_SYMBOL || r.status == DN_USYM_UNREADABLE)) {
                snprintf(buf, sizeof buf, "[%s]", r.module);
                name = buf;
            } else {
                name = "[unknown]";
            }
        }
        f[i].address = ip;
        f[i].symbol = intern(o, name);
        f[i].source_location = NULL;
        if (r.src) {
            snprintf(buf, sizeof buf, "%s:%d", r.src, r.line);
            f[i].source_location = intern(o, buf);
        }
        unnamed_no_maps += r.status == DN_USYM_NO_MAPS;
    }
    if (s->n && unnamed_no_maps == (int)s->n) {
        /* (no pid in the text: one string for all, not one kept per process) */
        s->error = intern(o, "the process exited before its memory maps could be read, "
                             "so its user frames are unnamed");
    } else if (n == 0) {
        s->error = intern(o, "the user stack was empty");
    }
    return missed;
}

/* Names a user stack of process tgid. Its memory maps are read again for a new stack
 * when the stack has an address outside every mapping read before (code mapped since:
 * dlopen) or they were read over a second ago (code unmapped and other code mapped at
 * the same place), once per round at most; not for every new stack, as a thread
 * preempted in a loop has a new one nearly every time. After the process exited, the
 * maps read last are used. */
static struct symstack *sym_user(struct dn_offcpu *o, uint32_t tgid, int32_t id)
{
    struct ucache_ent key = {.tgid = tgid, .id = id};
    struct ucache_ent *ce = dn_htab_get(&o->ucache, &key);
    if (ce)
        return ce->s;
    struct symstack *s;
    int n = id < 0 ? 0 : read_ips(o, id, true);
    if (id < 0) {
        s = failed_stack(o, id, true);
    } else if (n < 0) {
        s = missing_stack(o);
    } else {
        int64_t read_at = dn_usym_maps_read_ns(o->usym, (pid_t)tgid);
        if (!read_at || mono_ns() - read_at > 1000000000LL)
            reread_maps(o, tgid);
        s = new_stack(o, (uint32_t)n);
        if (!s)
            return NULL;
        if (name_frames(o, tgid, n, s) && !maps_read_now(o, tgid)) {
            reread_maps(o, tgid);
            name_frames(o, tgid, n, s);
        }
    }
    if (!s)
        return NULL;
    ce = malloc(sizeof *ce);
    if (ce) {
        *ce = (struct ucache_ent){.tgid = tgid, .id = id, .s = s};
        if (dn_htab_put(&o->ucache, ce) != 0)
            free(ce);
    }
    o->version++;
    return s;
}

static bool is_bpf_plumbing(const char *name)
{
    static const char *const prefixes[] = {"bpf_prog_", "bpf_trace_run", "__bpf_trace_",
                                           "__traceiter_", "bpf_get_stackid"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static struct symstack *sym_kernel(struct dn_offcpu *o, int32_t id)
{
    struct kcache_ent key = {.id = id};
    struct kcache_ent *ce = dn_htab_get(&o->kcache, &key);
    if (ce)
        return ce->s;
    struct symstack *s;
    int n = id < 0 ? 0 : read_ips(o, id, false);
    if (id < 0) {
        s = failed_stack(o, id, false);
    } else if (n < 0) {
        s = missing_stack(o);
    } else {
        s = new_stack(o, (uint32_t)n);
        if (!s)
            return NULL;
        struct dn_frame *f = (struct dn_frame *)s->frames;
        const char *why = NULL;
        uint32_t k = 0;
        for (int i = 0; i < n; i++) {
            uint64_t ip = o->ips[i];
            const char *w;
            const char *name = dn_kallsyms_lookup(i ? ip - 1 : ip, &w);
            /* The walk starts inside the tracepoint's BPF plumbing: not the thread's. */
            if (k == 0 && name && is_bpf_plumbing(name))
                continue;
            if (!name && !why)
                why = w;
            f[k].address = ip;
            f[k].symbol = name ? intern(o, name) : intern(o, "[unknown]");
            k++;
        }
        s->n = k;
        if (why)
            s->error = intern(o, why);
    }
    if (!s)
        return NULL;
    ce = malloc(sizeof *ce);
    if (ce) {
        *ce = (struct kcache_ent){.id = id, .s = s};
        if (dn_htab_put(&o->kcache, ce) != 0)
            free(ce);
    }
    o->version++;
    return s;
}

/* The key's stacks, named (cached on the key, so they survive the process). */
static void symbolize_key(struct dn_offcpu *o, struct acc_key *a)
{
    if (a->k.ustack == DN_OC_NO_STACK && a->k.kstack == DN_OC_NO_STACK)
        return;
    if (!a->us)
        a->us = sym_user(o, a->k.tgid, a->k.ustack);
    if (!a->ks)
        a->ks = sym_kernel(o, a->k.kstack);
}

/* ---- reading the kernel maps ------------------------------------------------------- */

/* Adds slot idx to those read each time (once). */
static void know_slot(struct dn_offcpu *o, uint32_t idx)
{
    if (idx >= DN_OC_SLOTS || (o->known_bits[idx / 64] & (1ULL << (idx % 64))))
        return;
    if (dn_grow(&o->known, &o->known_cap, o->nknown + 1, sizeof *o->known, 64))
        return; /* out of memory: the next scan finds it */
    o->known[o->nknown++] = idx;
    o->known_bits[idx / 64] |= 1ULL << (idx % 64);
}

/* Every slot taken, when the program could not announce some (full ring buffer). */
static void scan_slots(struct dn_offcpu *o)
{
    uint64_t lost = __atomic_load_n(&o->skel->bss->lost_slots, __ATOMIC_ACQUIRE);
    if (lost == o->lost_slots)
        return;
    o->lost_slots = lost;
    for (uint32_t i = 0; i < DN_OC_SLOTS; i++)
        if (__atomic_load_n(&o->slots[i].owner, __ATOMIC_ACQUIRE))
            know_slot(o, i);
}

static int on_event(void *ctx, void *data, size_t size)
{
    struct dn_offcpu *o = ctx;
    if (size < sizeof(struct dn_oc_event))
        return 0;
    const struct dn_oc_event *e = data;
    if (e->kind == DN_OC_EV_SLOT) {
        know_slot(o, (uint32_t)e->id);
        return 0;
    }
    if (dn_grow(&o->pending, &o->pending_cap, o->npending + 1, sizeof *o->pending, 64))
        return 0; /* symbolized at the next snapshot instead */
    memcpy(&o->pending[o->npending++], data, sizeof(struct dn_oc_event));
    return 0;
}

void dn_offcpu_handle_events(struct dn_offcpu *o)
{
    if (!o || !o->rb)
        return;
    ring_buffer__consume(o->rb);
    o->nmaps_read = 0;
    for (size_t i = 0; i < o->npending; i++)
        sym_user(o, o->pending[i].tgid, o->pending[i].id);
    o->npending = 0;
}

static void name_copy(char out[17], const char in[16])
{
    memcpy(out, in, 16);
    out[16] = '\0';
}

/* Takes a slot's thread figures into the thread's record (*a when known, else found or
 * made and stored in *a). */
static int update_thread(struct dn_offcpu *o, const struct dn_oc_slot *v, struct acc_thread **ap)
{
    struct acc_thread key = {.tgid = (uint32_t)(v->owner >> 32), .tid = (uint32_t)v->owner};
    struct acc_thread *a = *ap ? *ap : dn_htab_get(&o->threads, &key);
    if (!a) {
        if (!(a = calloc(1, sizeof *a)))
            return -ENOMEM;
        *a = key;
        if (dn_htab_put(&o->threads, a) != 0) {
            free(a);
            return -ENOMEM;
        }
    }
    *ap = a;
    uint64_t count = a->base_count + v->count, total = a->base_total_ns + v->total_ns;
    if (a->count != count || a->total_ns != total) {
        a->count = count;
        a->total_ns = total;
        a->min_ns = !a->base_count ? v->min_ns
                    : !v->count    ? a->base_min_ns
                    : v->min_ns < a->base_min_ns ? v->min_ns : a->base_min_ns;
        a->max_ns = v->max_ns > a->base_max_ns ? v->max_ns : a->base_max_ns;
        o->version++;
    }
    char name[17];
    name_copy(name, v->comm);
    if (!a->comm || strcmp(a->comm, name) != 0) {
        a->comm = intern(o, name);
        o->version++;
    }
    name_copy(name, v->pcomm);
    if (!a->pcomm || strcmp(a->pcomm, name) != 0) {
        a->pcomm = intern(o, name);
        o->version++;
    }
    return 0;
}

static enum dn_wait_class key_class(const struct acc_key *a)
{
    return dn_wait_classify(a->k.state, a->k.syscall, a->k.timed);
}

/* Key a's group in h (by stack or by wait), made when it is new; NULL without memory. */
static struct group *group_for(struct dn_htab *h, const struct acc_key *a, bool by_stack)
{
    struct group key;
    memset(&key, 0, sizeof key);
    key.tgid = a->k.tgid;
    key.gen = a->gen;
    if (by_stack) {
        key.a = a->k.ustack;
        key.b = a->k.kstack;
    } else {
        key.tid = a->k.tid;
        key.a = (int32_t)key_class(a);
        key.b = a->k.syscall;
    }
    struct group *g = dn_htab_get(h, &key);
    if (g)
        return g;
    if (!(g = malloc(sizeof *g)))
        return NULL;
    *g = key;
    if (dn_htab_put(h, g) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

static void group_add(struct group *g, struct acc_key *a, uint64_t count, uint64_t total_ns)
{
    if (!g)
        return;
    g->count += count;
    g->total_ns += total_ns;
    /* keys only grow, so the one that grew is the only one that can overtake */
    if (!g->heaviest || a->total_ns > g->heaviest->total_ns)
        g->heaviest = a;
}

static bool same_key(const struct dn_oc_key *a, const struct dn_oc_key *b)
{
    return a->tgid == b->tgid && a->tid == b->tid && a->ustack == b->ustack &&
           a->kstack == b->kstack && a->syscall == b->syscall && a->state == b->state &&
           a->timed == b->timed;
}

/* Takes key k's figures v (absolute) into its record: one of the hints when it is k's
 * (a live record: generation 0), else found or made. *out gets the record. */
static int update_key(struct dn_offcpu *o, const struct dn_oc_key *k, const struct dn_oc_val *v,
                      struct acc_key *hint1, struct acc_key *hint2, struct acc_key **out)
{
    struct acc_key *a = NULL;
    if (hint1 && !hint1->gen && same_key(&hint1->k, k))
        a = hint1;
    else if (hint2 && !hint2->gen && same_key(&hint2->k, k))
        a = hint2;
    struct acc_key key;
    if (!a) {
        memset(&key, 0, sizeof key);
        key.k = *k;
        key.k.pad = 0;
        a = dn_htab_get(&o->keys, &key);
    }
    if (!a) {
        if (!(a = calloc(1, sizeof *a)))
            return -ENOMEM;
        *a = key;
        if (dn_htab_put(&o->keys, a) != 0) {
            free(a);
            return -ENOMEM;
        }
        a->cls = key_class(a);
        a->gw = group_for(&o->gwait, a, false);
        a->gs = o->stacks ? group_for(&o->gstack, a, true) : NULL;
        if (!a->gw || (o->stacks && !a->gs))
            return -ENOMEM;
        if (a->gs) {
            a->next_in_gs = a->gs->keys;
            a->gs->keys = a;
        }
        o->version++;
    }
    if (out)
        *out = a;
    /* Figures only grow: the hash's copy of a key may lag the slot's (offcpu.h). */
    uint64_t count = a->base_count + v->count, total = a->base_total_ns + v->total_ns;
    if (count > a->count || (count == a->count && total > a->total_ns)) {
        uint64_t dc = count - a->count, dt = total - a->total_ns;
        a->count = count;
        a->total_ns = total;
        o->class_ns[a->cls] += dt;
        group_add(a->gw, a, dc, dt);
        group_add(a->gs, a, dc, dt);
        o->version++;
    }
    return 0;
}

/* A consistent copy of the figures of slot idx (its first DN_OC_SLOT_FIGURES bytes: the
 * totals, cur, alt and their figures as one, seq even and unchanged around the copy)
 * and its names; the rest of *out is left as it was. After a few tries against a
 * thread that keeps moving, the copy goes without the keys (false): their figures
 * come with the next read. */
static bool read_slot(const struct dn_offcpu *o, uint32_t idx, struct dn_oc_slot *out)
{
    const struct dn_oc_slot *s = &o->slots[idx];
    for (int tries = 0; tries < 4; tries++) {
        uint32_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        memcpy(out, (const void *)s, DN_OC_SLOT_FIGURES);
        memcpy(out->comm, (const void *)s->comm, sizeof out->comm);
        memcpy(out->pcomm, (const void *)s->pcomm, sizeof out->pcomm);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint32_t s2 = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
        if (!(s1 & 1) && s1 == s2)
            return true;
    }
    out->cur_count = out->alt_count = 0;
    return false;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* tgid's pair in gone[0..ngone) (pairs of tgid and generation, sorted by tgid), or
 * NULL when it is not among them. */
static const uint32_t *gone_find(const uint32_t *gone, size_t ngone, uint32_t tgid)
{
    return bsearch(&tgid, gone, ngone / 2, 2 * sizeof *gone, cmp_u32);
}

static bool is_gone(const uint32_t *gone, size_t ngone, uint32_t tgid)
{
    return gone_find(gone, ngone, tgid) != NULL;
}

/* Deletes from map fd the n keys of `keys` (ksz bytes each) that `pick` accepts, in
 * one batch (key by key without memory for the batch). */
static void delete_picked(int fd, const void *keys, size_t n, size_t ksz,
                          bool (*pick)(const void *key, const void *arg), const void *arg)
{
    char *sel = malloc(n ? n * ksz : 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = (const char *)keys + i * ksz;
        if (!pick(k, arg))
            continue;
        if (sel)
            memcpy(sel + m++ * ksz, k, ksz);
        else
            (void)dn_bpf_delete_keys(fd, k, 1, ksz);
    }
    if (sel)
        (void)dn_bpf_delete_keys(fd, sel, m, ksz);
    free(sel);
}

static int cmp_group(const void *a, const void *b);
static int cmp_acc_thread(const void *a, const void *b);

/* The element *e (w bytes: a pointer) into top[0..*n), kept in cmp's order (qsort's
 * comparator on two elements) and at most k long, when it is among the first k. */
static void top_insert(void *top, size_t *n, size_t k, const void *e, size_t w,
                       int (*cmp)(const void *, const void *))
{
    char *t = top;
    if (*n == k && cmp(e, t + (k - 1) * w) >= 0)
        return;
    size_t j = *n < k ? (*n)++ : k - 1;
    while (j > 0 && cmp(e, t + (j - 1) * w) < 0) {
        memcpy(t + j * w, t + (j - 1) * w, w);
        j--;
    }
    memcpy(t + j * w, e, w);
}

/* Figures of some intervals (count > 0) into running totals of intervals. */
static void add_figures(uint64_t *total_ns, uint64_t *count, uint64_t *min_ns, uint64_t *max_ns,
                        uint64_t t, uint64_t c, uint64_t mn, uint64_t mx)
{
    *total_ns += t;
    *count += c;
    if (mx > *max_ns)
        *max_ns = mx;
    if (!*min_ns || mn < *min_ns)
        *min_ns = mn;
}

/* An exited process's thread, its figures final: into the totals and top list of old. */
static void retired_thread(struct dn_offcpu *o, void *e)
{
    struct acc_thread *a = e;
    if (!a->count)
        return;
    add_figures(&o->old.total_ns, &o->old.count, &o->old.min_ns, &o->old.max_ns, a->total_ns,
                a->count, a->min_ns, a->max_ns);
    top_insert(o->old.top, &o->old.ntop, MAX_THREAD_STATS, &a, sizeof a, cmp_acc_thread);
}

/* Moves record e from table `from` to table `to`. Were `to` out of memory, e stays in
 * `from` (a put right after a del never has to grow it): a retired record there is
 * told by its generation, and the walks over live records skip it. */
static void move_record(struct dn_htab *from, struct dn_htab *to, void *e)
{
    if (dn_htab_put(to, e) != 0)
        (void)dn_htab_put(from, e);
}

/* The entries of table h (acc_thread or acc_key: tgid at offset `tgid_at`, gen after
 * the key) of the processes in gone[0..ngone) (pairs tgid, generation) get their
 * generation and move to table `old`: they leave the kernel's figures. `touch` runs on
 * each once it has it. */
static void retire(struct dn_offcpu *o, struct dn_htab *h, struct dn_htab *old, size_t tgid_at,
                   size_t gen_at, const uint32_t *gone, size_t ngone,
                   void (*touch)(struct dn_offcpu *, void *))
{
    void **moving = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < h->cap; i++) {
        char *e = h->slots[i];
        if (!e || *(uint32_t *)(e + gen_at))
            continue;
        if (is_gone(gone, ngone, *(uint32_t *)(e + tgid_at)) &&
            !dn_grow(&moving, &cap, n + 1, sizeof *moving, 64))
            moving[n++] = e;
    }
    for (size_t i = 0; i < n; i++) {
        char *e = dn_htab_del(h, moving[i]);
        if (!e)
            continue;
        const uint32_t *g = gone_find(gone, ngone, *(uint32_t *)(e + tgid_at));
        if (g)
            *(uint32_t *)(e + gen_at) = g[1];
        if (touch)
            touch(o, e);
        move_record(h, old, e);
    }
    free(moving);
}

/* A group of a gone process takes the generation of its keys (all of them go at once:
 * a group is one process's) and moves to the old groups (into their top list). */
static void regen_group(struct dn_offcpu *o, struct group *g, uint32_t gen, bool by_stack)
{
    struct dn_htab *h = by_stack ? &o->gstack : &o->gwait;
    if (!g || g->gen == gen || !dn_htab_del(h, g))
        return;
    g->gen = gen;
    move_record(h, by_stack ? &o->old_gstack : &o->old_gwait, g);
    if (by_stack) {
        top_insert(o->old.stack_top, &o->old.nstack_top, TOP_STACKS, &g, sizeof g, cmp_group);
    } else {
        o->old.wait_ns += g->total_ns;
        top_insert(o->old.wait_top, &o->old.nwait_top, MAX_BOTTLENECKS, &g, sizeof g, cmp_group);
    }
}

/* A retired key: its stacks named (from the maps read while the process lived), its
 * groups moved to its new generation with it. */
static void retire_acc_key(struct dn_offcpu *o, void *e)
{
    struct acc_key *a = e;
    symbolize_key(o, a);
    regen_group(o, a->gw, a->gen, false);
    regen_group(o, a->gs, a->gen, true);
}

/* Takes the figures of slot idx, the thread's and its last two keys', unless nothing
 * moved since the last time and `whole` is false. *c gets the slot's figures and names
 * when it was read (always with `whole`). */
static int take_slot(struct dn_offcpu *o, uint32_t idx, struct dn_oc_slot *c, bool whole)
{
    struct slot_view *v = &o->views[idx];
    const struct dn_oc_slot *s = &o->slots[idx];
    if (!whole && v->th && __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) == v->owner &&
        __atomic_load_n(&s->count, __ATOMIC_ACQUIRE) == v->count)
        return 0;
    bool all = read_slot(o, idx, c);
    if (!c->owner)
        return 0;
    if (v->owner != c->owner)
        memset(v, 0, sizeof *v);
    v->owner = c->owner;
    int rc = update_thread(o, c, &v->th);
    struct acc_key *cur = v->cur, *alt = v->alt;
    if (rc == 0 && c->cur_count) {
        struct dn_oc_val val = {.count = c->cur_count, .total_ns = c->cur_total_ns};
        rc = update_key(o, &c->cur, &val, cur, alt, &v->cur);
    }
    if (rc == 0 && c->alt_count) {
        struct dn_oc_val val = {.count = c->alt_count, .total_ns = c->alt_total_ns};
        rc = update_key(o, &c->alt, &val, alt, cur, &v->alt);
    }
    /* A torn copy leaves the count unseen: the keys' figures come next time. */
    v->count = rc == 0 && all ? c->count : UINT64_MAX;
    return rc;
}

/* Gives slot i of the known list back to the program: zeroed, then the owner (the
 * program only writes a slot it owns or claims from 0). */
static void free_slot(struct dn_offcpu *o, size_t i)
{
    uint32_t idx = o->known[i];
    struct dn_oc_slot *sl = &o->slots[idx];
    memset((char *)sl + sizeof sl->owner, 0, sizeof *sl - sizeof sl->owner);
    __atomic_store_n(&sl->owner, 0, __ATOMIC_RELEASE);
    memset(&o->views[idx], 0, sizeof o->views[idx]);
    o->known_bits[idx / 64] &= ~(1ULL << (idx % 64));
    o->dead_seen[idx / 64] &= ~(1ULL << (idx % 64));
    o->known[i] = o->known[--o->nknown];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct dead_list {
    const uint64_t *v; /* tgid << 32 | tid, sorted */
    size_t n;
};

static bool key_of_dead(const void *key, const void *arg)
{
    const struct dn_oc_key *k = key;
    const struct dead_list *d = arg;
    uint64_t who = (uint64_t)k->tgid << 32 | k->tid;
    return bsearch(&who, d->v, d->n, sizeof *d->v, cmp_u64) != NULL;
}

struct gone_list {
    const uint32_t *v; /* pairs of tgid and generation, sorted by tgid */
    size_t n;
};

static bool key_of_gone(const void *key, const void *arg)
{
    const struct gone_list *g = arg;
    return is_gone(g->v, g->n, ((const struct dn_oc_key *)key)->tgid);
}

static bool seen_of_gone(const void *key, const void *arg)
{
    const struct gone_list *g = arg;
    return is_gone(g->v, g->n, ((const struct dn_oc_seen *)key)->tgid);
}

/* Threads that exited while their process lives give their slots back, so a process
 * that keeps starting threads does not run out of them. A slot is freed the second time
 * it is seen `dead` (the program sets it at the thread's last switch): by then the key
 * map read in this refresh holds every key the thread left there. The thread's figures
 * are read once more; they become the base that a later thread with the same tid (after
 * the pid space wraps) adds to, and its keys leave the kernel's key map. */
static int free_dead_slots(struct dn_offcpu *o)
{
    int rc = 0;
    uint64_t *dead = NULL; /* tgid << 32 | tid */
    size_t ndead = 0, dead_cap = 0;
    for (size_t i = 0; i < o->nknown;) {
        uint32_t idx = o->known[i];
        struct dn_oc_slot *sl = &o->slots[idx];
        uint64_t bit = 1ULL << (idx % 64);
        if (!__atomic_load_n(&sl->dead, __ATOMIC_ACQUIRE) || !sl->owner) {
            i++;
            continue;
        }
        if (!(o->dead_seen[idx / 64] & bit)) {
            o->dead_seen[idx / 64] |= bit;
            i++;
            continue;
        }
        if (dn_grow(&dead, &dead_cap, ndead + 1, sizeof *dead, 64)) {
            rc = -ENOMEM;
            goto out;
        }
        struct dn_oc_slot c;
        if ((rc = take_slot(o, idx, &c, true)))
            goto out;
        struct acc_thread key = {.tgid = (uint32_t)(c.owner >> 32), .tid = (uint32_t)c.owner};
        struct acc_thread *a = dn_htab_get(&o->threads, &key);
        if (a) {
            a->base_count = a->count;
            a->base_total_ns = a->total_ns;
            a->base_min_ns = a->min_ns;
            a->base_max_ns = a->max_ns;
        }
        dead[ndead++] = c.owner;
        free_slot(o, i);
    }
    if (!ndead)
        goto out;
    o->kprev_ok = false; /* bases move */
    qsort(dead, ndead, sizeof *dead, cmp_u64);
    for (size_t i = 0; i < o->keys.cap; i++) {
        struct acc_key *k = o->keys.slots[i];
        uint64_t who = k ? (uint64_t)k->k.tgid << 32 | k->k.tid : 0;
        if (k && !k->gen && bsearch(&who, dead, ndead, sizeof *dead, cmp_u64)) {
            k->base_count = k->count;
            k->base_total_ns = k->total_ns;
        }
    }
    struct dead_list dl = {dead, ndead};
    delete_picked(o->keys_fd, o->kbuf.keys, o->kbuf.n, sizeof(struct dn_oc_key), key_of_dead, &dl);
out:
    free(dead);
    return rc;
}

/* Moves the figures of processes that are no longer tracked (they exited and the
 * collector let them go: their figures are final) out of the kernel's maps and slots.
 * Their stacks are named first, from the maps read while they lived. */
static int fold(struct dn_offcpu *o)
{
    int rc = dn_bpf_read_map(o->tracked_fd, sizeof(__u32), sizeof(struct dn_tracked),
                             DN_TRACKED_MAX, &o->trbuf);
    if (rc)
        return rc;
    uint32_t *live = o->trbuf.keys;
    size_t nlive = o->trbuf.n;
    if (nlive)
        qsort(live, nlive, sizeof *live, cmp_u32);

    /* One generation per exited process, shared by its threads and keys. */
    uint32_t *gone = NULL;
    size_t ngone = 0, gone_cap = 0;
    for (size_t i = 0; i < o->nknown; i++) {
        uint32_t tgid = (uint32_t)(__atomic_load_n(&o->slots[o->known[i]].owner,
                                                   __ATOMIC_ACQUIRE) >> 32);
        if (bsearch(&tgid, live, nlive, sizeof *live, cmp_u32))
            continue;
        bool seen = false;
        for (size_t j = 0; j < ngone && !seen; j += 2)
            seen = gone[j] == tgid;
        if (!seen && !dn_grow(&gone, &gone_cap, ngone + 2, sizeof *gone, 16)) {
            gone[ngone++] = tgid;
            gone[ngone++] = ++o->next_gen;
        }
    }
    if (!ngone)
        return 0;
    o->kprev_ok = false; /* keys change generation */
    qsort(gone, ngone / 2, 2 * sizeof *gone, cmp_u32); /* by tgid */
    struct gone_list gl = {gone, ngone};

    retire(o, &o->keys, &o->old_keys, offsetof(struct acc_key, k.tgid),
           offsetof(struct acc_key, gen), gone, ngone, retire_acc_key);
    retire(o, &o->threads, &o->old_threads, offsetof(struct acc_thread, tgid),
           offsetof(struct acc_thread, gen), gone, ngone, retired_thread);
    delete_picked(o->keys_fd, o->kbuf.keys, o->kbuf.n, sizeof(struct dn_oc_key), key_of_gone,
                  &gl);
    /* Their slots are free again. */
    for (size_t i = 0; i < o->nknown;) {
        uint32_t tgid = (uint32_t)(__atomic_load_n(&o->slots[o->known[i]].owner,
                                                   __ATOMIC_ACQUIRE) >> 32);
        if (tgid && is_gone(gone, ngone, tgid))
            free_slot(o, i);
        else
            i++;
    }
    /* Their maps, cached names and "already announced" marks go: a process that later
     * takes the same pid is a different program. */
    for (size_t j = 0; j < ngone; j += 2)
        dn_usym_forget(o->usym, (pid_t)gone[j]);
    for (size_t i = 0; i < o->ucache.cap;) {
        struct ucache_ent *e = o->ucache.slots[i];
        if (e && is_gone(gone, ngone, e->tgid)) {
            free(dn_htab_del(&o->ucache, e)); /* the table shifts: look at i again */
            continue;
        }
        i++;
    }
    if (dn_bpf_read_map(o->seen_fd, sizeof(struct dn_oc_seen), sizeof(__u8), DN_OC_SEEN_MAX,
                        &o->sbuf) == 0)
        delete_picked(o->seen_fd, o->sbuf.keys, o->sbuf.n, sizeof(struct dn_oc_seen),
                      seen_of_gone, &gl);
    free(gone);
    o->version++;
    return 0;
}

static int refresh(struct dn_offcpu *o)
{
    if (!o->skel)
        return 0;
    dn_offcpu_handle_events(o);
    scan_slots(o);
    /* Nothing switched since the last read (the counters each CPU bumps after adding an
     * interval did not move): the figures are as read then. They are read at least once
     * a second anyway, when the fold is due (a CPU that orders its writes loosely could
     * show the bump before the interval). */
    uint64_t dropped = __atomic_load_n(&o->skel->bss->dropped, __ATOMIC_RELAXED) +
                       __atomic_load_n(&o->skel->bss->dropped_keys, __ATOMIC_RELAXED);
    if (dropped != o->dropped) {
        o->dropped = dropped;
        o->version++;
    }
    int64_t now = mono_ns();
    bool fold_due = now >= o->next_fold_ns;
    if (!dn_change_gate_open(&o->slots_gate, &o->skel->bss->changes[0].n,
                             sizeof o->skel->bss->changes[0], o->change_slots, fold_due))
        return 0;
    /* Slots first, the hash second: a key leaves a slot for the hash, so read this way
     * round it is seen in one of them at least (the larger figures win). The hash is
     * read when the program wrote to it since the last read (its `keys` counters,
     * read after the slots, moved), and whenever slots may be freed or the hash folded
     * below, which need all of it. */
    int rc = 0;
    struct dn_oc_slot sl;
    for (size_t i = 0; i < o->nknown; i++)
        if ((rc = take_slot(o, o->known[i], &sl, false)))
            return rc;
    /* Freeing slots and folding only keep the kernel's slots and hash small: once a
     * second, or sooner when they fill up (slots of exited threads: each sample once an
     * eighth of them are taken). */
    bool free_due = fold_due || o->nknown > DN_OC_SLOTS / 8;
    bool fold_now = fold_due || o->nknown > DN_OC_SLOTS / 2 || o->kbuf.n > DN_OC_KEYS_MAX / 2;
    if (dn_change_gate_open(&o->keys_gate, &o->skel->bss->changes[0].keys,
                            sizeof o->skel->bss->changes[0], o->change_slots,
                            free_due || fold_now)) {
        /* Most entries are as they were (the hash keeps an entry in place while only its
         * figures change; a new one shifts those after it once): compared with the last
         * read at the same place, not looked up. */
        struct dn_map_buf last = o->kprev;
        size_t same = o->kprev_ok ? last.n : 0;
        o->kprev = o->kbuf;
        o->kbuf = last;
        o->kprev_ok = false;
        rc = dn_bpf_read_map(o->keys_fd, sizeof(struct dn_oc_key), sizeof(struct dn_oc_val),
                             DN_OC_KEYS_MAX, &o->kbuf);
        if (rc) {
            o->kbuf.n = 0;
            return rc;
        }
        const struct dn_oc_key *kk = o->kbuf.keys, *pk = o->kprev.keys;
        const struct dn_oc_val *kv = o->kbuf.vals, *pv = o->kprev.vals;
        for (size_t i = 0; i < o->kbuf.n; i++) {
            if (i < same && !memcmp(&kk[i], &pk[i], sizeof *kk) &&
                !memcmp(&kv[i], &pv[i], sizeof *kv))
                continue;
            if ((rc = update_key(o, &kk[i], &kv[i], NULL, NULL, NULL)))
                return rc;
        }
        o->kprev_ok = true;
    }
    if (free_due) {
        if ((rc = free_dead_slots(o)))
            return rc;
    }
    if (fold_now) {
        o->next_fold_ns = now + 1000000000LL;
        if ((rc = fold(o)))
            return rc;
    }
    return 0;
}

/* ---- set-up ------------------------------------------------------------------------ */

int dn_offcpu_open(struct dn_offcpu **out, int tracked_map_fd, int live_map_fd, bool stacks,
                   char *err, size_t errlen)
{
    int rc;
    *out = NULL;
    struct dn_offcpu *o = calloc(1, sizeof *o);
    if (!o || !(o->arena = dn_arena_new()) || !(o->usym = dn_usym_new())) {
        snprintf(err, errlen, "out of memory loading the eBPF off-CPU profiler");
        rc = -ENOMEM;
        goto fail;
    }
    if (!(o->views = calloc(DN_OC_SLOTS, sizeof *o->views))) {
        snprintf(err, errlen, "out of memory loading the eBPF off-CPU profiler");
        rc = -ENOMEM;
        goto fail;
    }
    dn_htab_init(&o->threads, offsetof(struct acc_thread, pad));
    dn_htab_init(&o->keys, offsetof(struct acc_key, pad));
    dn_htab_init(&o->gwait, offsetof(struct group, pad));
    dn_htab_init(&o->gstack, offsetof(struct group, pad));
    dn_htab_init(&o->old_threads, offsetof(struct acc_thread, pad));
    dn_htab_init(&o->old_keys, offsetof(struct acc_key, pad));
    dn_htab_init(&o->old_gwait, offsetof(struct group, pad));
    dn_htab_init(&o->old_gstack, offsetof(struct group, pad));
    dn_htab_init(&o->ucache, offsetof(struct ucache_ent, s));
    dn_htab_init(&o->kcache, sizeof(int32_t));
    o->stacks = stacks;
    o->empty = intern(o, "");
    o->skel = offcpu_bpf__open();
    if (!o->skel) {
        rc = -errno;
        dn_ebpf_explain(err, errlen, "opening the eBPF off-CPU profiler", rc);
        goto fail;
    }
    o->skel->rodata->with_stacks = stacks;
    rc = dn_ebpf_share_tracker_maps(o->skel->maps.tracked, o->skel->maps.live, tracked_map_fd,
                                    live_map_fd, "the off-CPU profiler", err, errlen);
    if (rc)
        goto fail;
    if (!stacks) {
        /* No stack walks: the stack map would be memory for nothing. */
        bpf_map__set_max_entries(o->skel->maps.kstacks, 1);
        bpf_map__set_max_entries(o->skel->maps.ustacks, 1);
        bpf_map__set_max_entries(o->skel->maps.seen, 1);
    }
    rc = offcpu_bpf__load(o->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "loading the eBPF off-CPU profiler", rc);
        goto fail;
    }
    if (!o->skel->bss) {
        rc = -ENOTSUP;
        dn_ebpf_explain(err, errlen, "mapping the off-CPU profiler's settings", rc);
        goto fail;
    }
    o->rb = ring_buffer__new(bpf_map__fd(o->skel->maps.events), on_event, o, NULL);
    if (!o->rb) {
        rc = -errno;
        dn_ebpf_explain(err, errlen, "opening the off-CPU profiler's ring buffer", rc);
        goto fail;
    }
    rc = offcpu_bpf__attach(o->skel);
    if (rc) {
        dn_ebpf_explain(err, errlen, "attaching to the sched_switch tracepoint", rc);
        goto fail;
    }
    void *m;
    rc = dn_bpf_map_mmap(bpf_map__fd(o->skel->maps.slots),
                         (size_t)DN_OC_SLOTS * sizeof(struct dn_oc_slot), true,
                         "the off-CPU profiler's thread slots", &m, &o->slots_len, err, errlen);
    if (rc)
        goto fail;
    o->slots = m;
    o->keys_fd = bpf_map__fd(o->skel->maps.keys);
    o->kstacks_fd = bpf_map__fd(o->skel->maps.kstacks);
    o->ustacks_fd = bpf_map__fd(o->skel->maps.ustacks);
    o->seen_fd = bpf_map__fd(o->skel->maps.seen);
    o->tracked_fd = bpf_map__fd(o->skel->maps.tracked);
    o->next_fold_ns = mono_ns() + 1000000000LL;
    int ncpu = libbpf_num_possible_cpus();
    o->change_slots = ncpu <= 0 || ncpu > DN_OC_CHANGE_SLOTS ? DN_OC_CHANGE_SLOTS : (size_t)ncpu;
    if (stacks)
        dn_kallsyms_prefetch(); /* no-op when the session started it already */
    *out = o;
    return 0;

fail:
    dn_offcpu_free(o);
    return rc ? rc : -EINVAL;
}

static void unmap_slots(struct dn_offcpu *o)
{
    if (o->slots)
        munmap(o->slots, o->slots_len);
    o->slots = NULL;
}

void dn_offcpu_detach(struct dn_offcpu *o, bool finish)
{
    if (!o || !o->skel)
        return;
    o->slots_gate.read_once = o->keys_gate.read_once = false; /* the last read: whole */
    if (finish && refresh(o) == 0) {
        /* Name every stack while the stack map exists. */
        for (size_t i = 0; i < o->keys.cap; i++)
            if (o->keys.slots[i])
                symbolize_key(o, o->keys.slots[i]);
        for (size_t i = 0; i < o->old_keys.cap; i++)
            if (o->old_keys.slots[i])
                symbolize_key(o, o->old_keys.slots[i]);
    }
    ring_buffer__free(o->rb);
    o->rb = NULL;
    unmap_slots(o);
    offcpu_bpf__destroy(o->skel);
    o->skel = NULL;
    o->npending = 0;
}

static void free_table(struct dn_htab *h)
{
    for (size_t i = 0; i < h->cap; i++)
        free(h->slots[i]);
    dn_htab_free(h);
}

void dn_offcpu_free(struct dn_offcpu *o)
{
    if (!o)
        return;
    ring_buffer__free(o->rb);
    unmap_slots(o);
    offcpu_bpf__destroy(o->skel);
    free_table(&o->threads);
    free_table(&o->keys);
    free_table(&o->gwait);
    free_table(&o->gstack);
    free_table(&o->old_threads);
    free_table(&o->old_keys);
    free_table(&o->old_gwait);
    free_table(&o->old_gstack);
    free_table(&o->ucache);
    free_table(&o->kcache);
    dn_usym_free(o->usym);
    dn_offcpu_sample_unref(o->last);
    dn_arena_unref(o->arena);
    free(o->pending);
    free(o->maps_read);
    free(o->known);
    free(o->views);
    struct dn_map_buf *bufs[] = {&o->kbuf, &o->kprev, &o->trbuf, &o->sbuf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(bufs[i]->keys);
        free(bufs[i]->vals);
    }
    free(o);
}

int dn_offcpu_event_fd(const struct dn_offcpu *o)
{
    return o && o->rb ? ring_buffer__epoll_fd(o->rb) : -1;
}

void dn_offcpu_exclude_tid(struct dn_offcpu *o, pid_t tid)
{
    if (o && o->skel)
        __atomic_store_n(&o->skel->bss->excluded_tid, (uint32_t)(tid > 0 ? tid : 0),
                         __ATOMIC_RELAXED);
}

void dn_offcpu_only_tgid(struct dn_offcpu *o, pid_t tgid)
{
    if (!o)
        return;
    uint32_t t = (uint32_t)(tgid > 0 ? tgid : 0);
    if (t != o->only_tgid)
        o->version++;
    o->only_tgid = t;
    if (o->skel)
        __atomic_store_n(&o->skel->bss->only_tgid, t, __ATOMIC_RELAXED);
}

/* ---- snapshots --------------------------------------------------------------------- */

static bool wanted(const struct dn_offcpu *o, uint32_t tgid)
{
    return !o->only_tgid || tgid == o->only_tgid;
}

static const struct acc_thread *thread_of(const struct dn_offcpu *o, uint32_t tgid, uint32_t tid,
                                          uint32_t gen)
{
    struct acc_thread key = {.tgid = tgid, .tid = tid, .gen = gen};
    const struct acc_thread *a = dn_htab_get(gen ? &o->old_threads : &o->threads, &key);
    return a || !gen ? a : dn_htab_get(&o->threads, &key); /* left there (move_record) */
}

static int cmp_thread(const void *a, const void *b)
{
    const struct dn_offcpu_thread *x = a, *y = b;
    if (x->total_ns != y->total_ns)
        return x->total_ns > y->total_ns ? -1 : 1;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static int cmp_acc_thread(const void *a, const void *b)
{
    const struct acc_thread *x = *(struct acc_thread *const *)a,
                            *y = *(struct acc_thread *const *)b;
    if (x->total_ns != y->total_ns)
        return x->total_ns > y->total_ns ? -1 : 1;
    if (x->tgid != y->tgid)
        return x->tgid < y->tgid ? -1 : 1;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static int cmp_group(const void *a, const void *b)
{
    const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;
    if (x->total_ns != y->total_ns)
        return x->total_ns > y->total_ns ? -1 : 1;
    return memcmp(x, y, offsetof(struct group, pad));
}

/* Adds the wanted groups of h with time (live ones only: `live`) to top[0..*n) and
 * their time to *all. */
static void scan_groups(const struct dn_offcpu *o, const struct dn_htab *h, bool live,
                        struct group **top, size_t *n, size_t k, uint64_t *all)
{
    for (size_t i = 0; i < h->cap; i++) {
        struct group *g = h->slots[i];
        if (!g || !g->total_ns || (live && g->gen) || !wanted(o, g->tgid))
            continue;
        *all += g->total_ns;
        top_insert(top, n, k, &g, sizeof g, cmp_group);
    }
}

/* The k heaviest wanted groups (by wait, or by stack) into top[] (heaviest first;
 * returns how many) and the time of all wanted groups into *all: the live groups
 * walked, the exited processes' from the top list kept as they retired (walked too
 * when only one process is wanted). */
static size_t top_groups(const struct dn_offcpu *o, bool by_stack, struct group **top, size_t k,
                         uint64_t *all)
{
    size_t n = 0;
    *all = 0;
    scan_groups(o, by_stack ? &o->gstack : &o->gwait, true, top, &n, k, all);
    if (o->only_tgid) {
        scan_groups(o, by_stack ? &o->old_gstack : &o->old_gwait, false, top, &n, k, all);
        return n;
    }
    struct group *const *old = by_stack ? o->old.stack_top : o->old.wait_top;
    size_t nold = by_stack ? o->old.nstack_top : o->old.nwait_top;
    for (size_t i = 0; i < nold; i++)
        top_insert(top, &n, k, &old[i], sizeof old[i], cmp_group);
    *all += by_stack ? 0 : o->old.wait_ns; /* (stack groups: not needed) */
    return n;
}

static const char *what_it_did(enum dn_wait_class c, int32_t nr, char *buf, size_t len)
{
    char name[32];
    const char *sc = nr >= 0 ? dn_syscall_name(nr, name, sizeof name) : NULL;
    switch (c) {
    case DN_WAIT_IO:
        snprintf(buf, len, "waiting for I/O (uninterruptible)%s%s", sc ? " in " : "", sc ? sc : "");
        break;
    case DN_WAIT_LOCK:
        snprintf(buf, len, "waiting on a lock (%s)", sc ? sc : "futex");
        break;
    case DN_WAIT_SLEEP:
        snprintf(buf, len, "sleeping in %s", sc ? sc : "a timed wait");
        break;
    case DN_WAIT_CPU:
        snprintf(buf, len, "runnable but waiting for a CPU (preempted)");
        break;
    default:
        if (sc)
            snprintf(buf, len, "waiting in %s", sc);
        else
            snprintf(buf, len, "waiting outside any system call");
        break;
    }
    return buf;
}

static int add_bottlenecks(struct dn_offcpu *o, struct dn_offcpu_sample *s)
{
    struct group *v[MAX_BOTTLENECKS];
    uint64_t all;
    size_t n = top_groups(o, false, v, MAX_BOTTLENECKS, &all);
    s->bottlenecks = calloc(MAX_BOTTLENECKS, sizeof *s->bottlenecks);
    for (size_t i = 0; s->bottlenecks && i < n && s->nbottlenecks < MAX_BOTTLENECKS; i++) {
        const struct group *x = v[i];
        double pct = 100.0 * (double)x->total_ns / (double)all;
        if (pct < BOTTLENECK_MIN_PCT)
            break;
        const struct acc_thread *t = thread_of(o, x->tgid, x->tid, x->gen);
        const char *tn = t && t->comm ? t->comm : "?", *pn = t && t->pcomm ? t->pcomm : "?";
        char what[96], buf[384];
        snprintf(buf, sizeof buf,
                 "thread %u of process %u (%s in %s) spent %.1f ms off-CPU %s: %.1f%% of all "
                 "off-CPU time",
                 x->tid, x->tgid, tn, pn, (double)x->total_ns / 1e6,
                 what_it_did((enum dn_wait_class)x->a, x->b, what, sizeof what), pct);
        if ((s->bottlenecks[s->nbottlenecks] = strdup(buf)))
            s->nbottlenecks++;
    }
    return 0;
}

/* The [pid, tid] of the threads that waited in stack group x (at most MAX_STACK_THREADS),
 * found again from its keys for the few groups a sample lists. */
static void stack_threads(const struct group *x, struct dn_offcpu_stack *st)
{
    st->threads = malloc(MAX_STACK_THREADS * sizeof *st->threads);
    if (!st->threads)
        return;
    for (const struct acc_key *a = x->keys; a && st->nthreads < MAX_STACK_THREADS;
         a = a->next_in_gs) {
        if (!a->total_ns)
            continue;
        bool listed = false;
        for (uint32_t t = 0; t < st->nthreads && !listed; t++)
            listed = st->threads[t][1] == a->k.tid;
        if (!listed) {
            st->threads[st->nthreads][0] = a->k.tgid;
            st->threads[st->nthreads][1] = a->k.tid;
            st->nthreads++;
        }
    }
}

static int add_stacks(struct dn_offcpu *o, struct dn_offcpu_sample *s)
{
    struct group *v[TOP_STACKS];
    uint64_t all;
    size_t top = top_groups(o, true, v, TOP_STACKS, &all);
    s->stacks = calloc(top ? top : 1, sizeof *s->stacks);
    if (!s->stacks)
        return -ENOMEM;
    for (size_t i = 0; i < top; i++) {
        const struct group *x = v[i];
        struct acc_key *a = x->heaviest;
        struct dn_offcpu_stack *st = &s->stacks[s->nstacks];
        symbolize_key(o, a);
        const struct acc_thread *t = thread_of(o, a->k.tgid, a->k.tid, a->gen);
        st->total_ns = x->total_ns;
        st->count = x->count;
        st->pid = a->k.tgid;
        st->tid = a->k.tid;
        st->process_name = t && t->pcomm ? t->pcomm : o->empty;
        st->thread_name = t && t->comm ? t->comm : o->empty;
        st->user_stack_id = a->k.ustack;
        st->kernel_stack_id = a->k.kstack;
        st->state = a->k.state;
        st->syscall = a->k.syscall;
        st->wait = key_class(a);
        stack_threads(x, st);
        if (a->us) {
            st->nuser = a->us->n;
            st->user = a->us->frames;
            st->user_stack_error = a->us->error;
        }
        if (a->ks) {
            st->nkernel = a->ks->n;
            st->kernel = a->ks->frames;
            st->kernel_stack_error = a->ks->error;
        }
        s->nstacks++;
    }
    return 0;
}

/* Thread a into s's list (and, with `totals`, into its totals). */
static void list_thread(const struct dn_offcpu *o, struct dn_offcpu_sample *s, size_t *n,
                        const struct acc_thread *a, bool totals)
{
    s->threads[(*n)++] = (struct dn_offcpu_thread){
        .pid = a->tgid,
        .tid = a->tid,
        .total_ns = a->total_ns,
        .count = a->count,
        .min_ns = a->min_ns,
        .max_ns = a->max_ns,
        .thread_name = a->comm ? a->comm : o->empty,
        .process_name = a->pcomm ? a->pcomm : o->empty,
    };
    if (totals)
        add_figures(&s->total_ns, &s->events, &s->min_ns, &s->max_ns, a->total_ns, a->count,
                    a->min_ns, a->max_ns);
}

int dn_offcpu_snapshot(struct dn_offcpu *o, struct dn_offcpu_sample **out)
{
    *out = NULL;
    int rc = refresh(o);
    if (rc)
        return rc;
    if (o->last && o->version == o->last_version) {
        *out = dn_offcpu_sample_ref(o->last);
        return 0;
    }
    struct dn_offcpu_sample *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->refs = 1;
    s->arena = dn_arena_ref(o->arena);
    s->stacks_enabled = o->stacks;
    s->dropped = o->dropped;

    /* The live threads, and the exited processes' from what was kept as they retired
     * (all of them walked when only one process is wanted). */
    bool walk_old = o->only_tgid != 0;
    size_t n = 0, room = o->threads.n + (walk_old ? o->old_threads.n : o->old.ntop);
    s->threads = calloc(room ? room : 1, sizeof *s->threads);
    if (!s->threads) {
        dn_offcpu_sample_unref(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < o->threads.cap; i++) {
        const struct acc_thread *a = o->threads.slots[i];
        if (a && !a->gen && a->count && wanted(o, a->tgid))
            list_thread(o, s, &n, a, true);
    }
    for (size_t i = 0; walk_old && i < o->old_threads.cap; i++) {
        const struct acc_thread *a = o->old_threads.slots[i];
        if (a && a->count && wanted(o, a->tgid))
            list_thread(o, s, &n, a, true);
    }
    for (size_t i = 0; !walk_old && i < o->old.ntop; i++)
        list_thread(o, s, &n, o->old.top[i], false);
    if (!walk_old && o->old.count)
        add_figures(&s->total_ns, &s->events, &s->min_ns, &s->max_ns, o->old.total_ns,
                    o->old.count, o->old.min_ns, o->old.max_ns);
    qsort(s->threads, n, sizeof *s->threads, cmp_thread);
    /* Every thread counts in the totals; a sample lists the heaviest ones (a run with
     * thousands of short-lived processes would otherwise grow every sample). */
    s->nthreads = n < MAX_THREAD_STATS ? n : MAX_THREAD_STATS;

    if (!o->only_tgid) {
        memcpy(s->class_ns, o->class_ns, sizeof s->class_ns);
    } else {
        const struct dn_htab *tables[] = {&o->keys, &o->old_keys};
        for (size_t t = 0; t < 2; t++)
            for (size_t i = 0; i < tables[t]->cap; i++) {
                const struct acc_key *a = tables[t]->slots[i];
                if (a && wanted(o, a->k.tgid))
                    s->class_ns[a->cls] += a->total_ns;
            }
    }
    if ((rc = add_bottlenecks(o, s)) || (o->stacks && (rc = add_stacks(o, s)))) {
        dn_offcpu_sample_unref(s);
        return rc;
    }
    dn_offcpu_sample_unref(o->last);
    o->last = dn_offcpu_sample_ref(s);
    o->last_version = o->version;
    *out = s;
    return 0;
}

/* ---- folded stacks ----------------------------------------------------------------- */

struct fline {
    char *text;
    uint64_t ns;
};

static int cmp_fline(const void *a, const void *b)
{
    return strcmp(((const struct fline *)a)->text, ((const struct fline *)b)->text);
}

/* A frame as folded text: ';' separates frames and the last space the weight. */
static void put_frame(struct dn_buf *b, const char *s, const char *suffix)
{
    dn_buf_append(b, ";", 1);
    size_t start = b->len;
    dn_buf_puts(b, s && *s ? s : "[unknown]");
    for (size_t i = start; !b->oom && i < b->len; i++)
        if (b->data[i] == ';' || b->data[i] == '\n' || b->data[i] == '\r')
            b->data[i] = ':';
    if (suffix)
        dn_buf_puts(b, suffix);
}

static void key_line(struct dn_offcpu *o, struct acc_key *a, struct dn_buf *b)
{
    const struct acc_thread *t = thread_of(o, a->k.tgid, a->k.tid, a->gen);
    char comm[32];
    if (t && t->pcomm && *t->pcomm)
        snprintf(comm, sizeof comm, "%s", t->pcomm);
    else
        snprintf(comm, sizeof comm, "[pid %u]", a->k.tgid);
    put_frame(b, comm, NULL);
    memmove(b->data, b->data + 1, b->len); /* no leading ';' */
    b->len--;
    symbolize_key(o, a);
    if (!a->us && !a->ks) {
        char what[96], sc[32];
        const char *name = a->k.syscall >= 0 ? dn_syscall_name(a->k.syscall, sc, sizeof sc) : NULL;
        snprintf(what, sizeof what, "[%s: %s]", dn_wait_class_name(key_class(a)),
                 name ? name : "no syscall");
        put_frame(b, what, NULL);
        return;
    }
    if (a->us && a->us->n)
        for (uint32_t i = a->us->n; i-- > 0;)
            put_frame(b, a->us->frames[i].symbol, NULL);
    else
        put_frame(b, "[user stack unavailable]", NULL);
    if (a->ks && a->ks->n)
        for (uint32_t i = a->ks->n; i-- > 0;)
            put_frame(b, a->ks->frames[i].symbol, "_[k]");
    else
        put_frame(b, "[kernel stack unavailable]", "_[k]");
}

int dn_offcpu_folded(struct dn_offcpu *o, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    int rc = refresh(o);
    if (rc)
        return rc;
    size_t room = o->keys.n + o->old_keys.n;
    struct fline *v = calloc(room ? room : 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < o->keys.cap + o->old_keys.cap; i++) {
        struct acc_key *a = i < o->keys.cap ? o->keys.slots[i] : o->old_keys.slots[i - o->keys.cap];
        if (!a || !a->total_ns || !wanted(o, a->k.tgid))
            continue;
        struct dn_buf b = {0};
        key_line(o, a, &b);
        if (b.oom) {
            dn_buf_free(&b);
            rc = -ENOMEM;
            break;
        }
        v[n++] = (struct fline){b.data, a->total_ns};
    }
    struct dn_buf out = {0};
    if (rc == 0) {
        qsort(v, n, sizeof *v, cmp_fline);
        /* Identical lines merged; weights rounded on the running sum, so they add up
         * to the total in microseconds. */
        uint64_t cum_ns = 0, cum_us = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint64_t ns = 0;
            for (; j < n && strcmp(v[j].text, v[i].text) == 0; j++)
                ns += v[j].ns;
            cum_ns += ns;
            uint64_t us = (cum_ns + 500) / 1000 - cum_us;
            cum_us += us;
            if (us)
                dn_buf_printf(&out, "%s %llu\n", v[i].text, (unsigned long long)us);
            i = j;
        }
        if (out.oom)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].text);
    free(v);
    if (rc) {
        dn_buf_free(&out);
        return rc;
    }
    if (!out.data && !(out.data = calloc(1, 1)))
        return -ENOMEM;
    *text = out.data;
    *len = out.len;
    return 0;
}
