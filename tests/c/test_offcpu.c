/* The C-only parts of the off-CPU profiler: the classification rule and verdict
 * (README's table and thresholds), the hash table and arena it keeps its data in, and
 * symbolization against ground truth this program knows about itself: its own
 * functions (PIE, DWARF lines from -g), a libc function, and mappings that cannot be
 * named (anonymous, memfd, deleted file, unmapped) which must say so, never crash.
 * Last, with eBPF (root), a whole profiled session of `sleep 0.3`, for the sanitizers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "bpf/offcpu.h"
#include "core/arena.h"
#include "core/procfs.h"
#include "core/session.h"
#include "ebpf/common.h"
#include "ebpf/ebpf_sample.h"
#include "core/htab.h"
#include "ebpf/offcpu_analysis.h"
#include "symbolize/kallsyms.h"
#include "symbolize/usym.h"

#include "check.h"

static void test_classify(void)
{
    CHECK(dn_wait_classify(DN_OC_RUNNING, 0, false) == DN_WAIT_CPU, "preempted: cpu");
    CHECK(dn_wait_classify(DN_OC_RUNNING, 202, false) == DN_WAIT_CPU, "preempted in futex: cpu");
    CHECK(dn_wait_classify(DN_OC_UNINTERRUPTIBLE, 18, false) == DN_WAIT_IO, "D in pwrite64: io");
    CHECK(dn_wait_classify(DN_OC_UNINTERRUPTIBLE, -1, false) == DN_WAIT_IO, "D in a fault: io");
    CHECK(dn_wait_classify(DN_OC_IDLE, 18, false) == DN_WAIT_OTHER, "D|NOLOAD: other");
    CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, 202, false) == DN_WAIT_LOCK, "futex: lock");
    CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, 449, false) == DN_WAIT_LOCK, "futex_waitv: lock");
    CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, 35, false) == DN_WAIT_SLEEP, "nanosleep: sleep");
    CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, 230, false) == DN_WAIT_SLEEP, "clock_nanosleep");
    int polls[] = {7, 23, 232, 270, 271, 281, 441};
    for (size_t i = 0; i < sizeof polls / sizeof polls[0]; i++) {
        CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, polls[i], true) == DN_WAIT_SLEEP,
              "timed poll-like %d: sleep", polls[i]);
        CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, polls[i], false) == DN_WAIT_OTHER,
              "untimed poll-like %d: other", polls[i]);
    }
    CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, 0, false) == DN_WAIT_OTHER, "read: other");
    CHECK(dn_wait_classify(DN_OC_INTERRUPTIBLE, 61, false) == DN_WAIT_OTHER, "wait4: other");
    CHECK(dn_wait_classify(DN_OC_STOPPED, 230, false) == DN_WAIT_OTHER, "stopped: other");
    CHECK(strcmp(dn_wait_class_name(DN_WAIT_IO), "io") == 0, "class names");
}

static const char *verdict(uint64_t io, uint64_t lock, uint64_t sleep, uint64_t cpu, uint64_t other,
                           struct dn_offcpu_analysis *a)
{
    uint64_t c[DN_WAIT_NCLASSES] = {io, lock, sleep, cpu, other};
    dn_offcpu_analyze(c, a);
    return a->bottleneck_type;
}

static void test_verdict(void)
{
    struct dn_offcpu_analysis a;
    CHECK(strcmp(verdict(0, 0, 0, 0, 0, &a), "unknown") == 0 && a.nhints == 0, "no data");
    CHECK(strcmp(verdict(0, 0, 95, 5, 0, &a), "sleep") == 0, "sleep");
    CHECK(a.pct[DN_WAIT_SLEEP] == 95.0 && a.nhints == 1, "sleep share %.2f, %d hints",
          a.pct[DN_WAIT_SLEEP], a.nhints);
    CHECK(strcmp(verdict(50, 30, 0, 0, 20, &a), "io_blocked") == 0, "io at exactly 50%%");
    CHECK(strcmp(verdict(0, 60, 0, 40, 0, &a), "lock_contention") == 0, "lock");
    CHECK(a.nhints == 2 && strstr(a.hints[0], "futex") && strstr(a.hints[1], "CPU"),
          "hints largest first: %s | %s", a.hints[0], a.hints[1]);
    CHECK(strcmp(verdict(30, 25, 0, 0, 45, &a), "mixed") == 0, "mixed: 55%% diagnosable");
    CHECK(strcmp(verdict(30, 10, 0, 0, 60, &a), "unknown") == 0, "40%% diagnosable: unknown");
    CHECK(strcmp(verdict(0, 0, 0, 100, 0, &a), "unknown") == 0, "only preemption: unknown");
    CHECK(a.nhints == 1 && strstr(a.hints[0], "100.0%"), "cpu hint: %s", a.hints[0]);
    CHECK(strcmp(verdict(10, 0, 0, 0, 90, &a), "unknown") == 0 && a.nhints == 1,
          "10%% io gets no hint");
}

struct rec {
    uint32_t key[3];
    int value;
};

static void test_htab(void)
{
    struct dn_htab h;
    dn_htab_init(&h, sizeof(uint32_t[3]));
    enum { N = 5000 };
    struct rec *r = calloc(N, sizeof *r);
    for (int i = 0; i < N; i++) {
        r[i].key[0] = (uint32_t)i * 7919u;
        r[i].key[1] = (uint32_t)i % 13;
        r[i].value = i;
        CHECK(dn_htab_put(&h, &r[i]) == 0, "put %d", i);
    }
    CHECK(h.n == N, "n %zu", h.n);
    for (int i = 0; i < N; i += 2)
        CHECK(dn_htab_del(&h, r[i].key) == &r[i], "del %d", i);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        struct rec *got = dn_htab_get(&h, r[i].key);
        bad += (i % 2) ? got != &r[i] : got != NULL;
    }
    CHECK(bad == 0 && h.n == N / 2, "after deleting half: %d wrong, n %zu", bad, h.n);
    uint32_t absent[3] = {1, 2, 3};
    CHECK(dn_htab_del(&h, absent) == NULL, "deleting an absent key");
    dn_htab_free(&h);
    free(r);
}

static void test_arena(void)
{
    struct dn_arena *a = dn_arena_new();
    const char *x = dn_arena_intern(a, "schedule");
    char buf[16];
    strcpy(buf, "schedule");
    CHECK(x && dn_arena_intern(a, buf) == x && x != buf, "interned once");
    const char *keep = NULL;
    for (int i = 0; i < 20000; i++) { /* several chunks, table growth */
        snprintf(buf, sizeof buf, "sym%d", i);
        const char *s = dn_arena_intern(a, buf);
        if (i == 17)
            keep = s;
    }
    CHECK(keep && strcmp(keep, "sym17") == 0 && dn_arena_intern(a, "sym17") == keep,
          "strings never move");
    void *big = dn_arena_alloc(a, 1 << 20);
    CHECK(big && ((uintptr_t)big & 7) == 0, "a large block");
    struct dn_arena *r = dn_arena_ref(a);
    dn_arena_unref(a);
    CHECK(strcmp(x, "schedule") == 0, "alive while referenced");
    dn_arena_unref(r);
}

/* A function this program names itself; the line of its return statement. */
enum { MARKER_LINE = __LINE__ + 4 };
__attribute__((noinline)) int marker_function(int x)
{
    __asm__ volatile("" ::: "memory");
    return x * 3 + 1;
}

static void test_usym(void)
{
    struct dn_usym *u = dn_usym_new();
    pid_t me = getpid();
    struct dn_usym_frame f;
    dn_usym_resolve(u, me, (uint64_t)(uintptr_t)marker_function, 0, &f);
    CHECK(f.status == DN_USYM_NO_MAPS && f.why, "before reading maps: no maps");

    /* mappings made before the read */
    void *anon = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int mfd = memfd_create("jit", 0);
    void *mem = MAP_FAILED;
    if (mfd >= 0 && ftruncate(mfd, 4096) == 0)
        mem = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, mfd, 0);
    char path[] = "/tmp/denet-offcpu-test-XXXXXX";
    int dfd = mkstemp(path);
    void *del = MAP_FAILED;
    if (dfd >= 0 && ftruncate(dfd, 4096) == 0)
        del = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, dfd, 0);
    unlink(path);
    /* a path with spaces (the rest of the line is the path) */
    char spaced[] = "/tmp/denet offcpu test XXXXXX";
    int sfd = mkstemp(spaced);
    void *sp = MAP_FAILED;
    if (sfd >= 0 && ftruncate(sfd, 4096) == 0)
        sp = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, sfd, 0);
    /* maps text far longer than the first read buffer: 800 mappings that cannot merge */
    enum { NMAPS = 800 };
    char *many = mmap(NULL, NMAPS * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (many != MAP_FAILED)
        for (int i = 0; i < NMAPS; i += 2)
            mprotect(many + (size_t)i * 4096, 4096, PROT_READ | PROT_EXEC);

    CHECK(dn_usym_read_maps(u, me) == 0 && dn_usym_has_maps(u, me), "reading our maps");
    uint64_t fn = (uint64_t)(uintptr_t)marker_function;
    dn_usym_resolve(u, me, fn + 4, fn + 3, &f);
    CHECK(f.status == DN_USYM_OK && f.symbol && strcmp(f.symbol, "marker_function") == 0,
          "own PIE function: %s (%d)", f.symbol ? f.symbol : "-", f.status);
    CHECK(f.module && strstr(f.module, "test_offcpu"), "module %s", f.module ? f.module : "-");
    /* the return statement's line, through DWARF (-g) */
    int want = MARKER_LINE;
    bool line_ok = false;
    for (uint64_t off = 0; off < 32 && !line_ok; off++) {
        dn_usym_resolve(u, me, fn + off, fn + off, &f);
        line_ok = f.src && strstr(f.src, "test_offcpu.c") && f.line == want;
    }
    CHECK(line_ok, "source line %d of marker_function found", want);

    uint64_t ns = (uint64_t)(uintptr_t)nanosleep;
    dn_usym_resolve(u, me, ns, ns, &f);
    CHECK(f.status == DN_USYM_OK && f.symbol && strstr(f.symbol, "nanosleep"),
          "libc function: %s", f.symbol ? f.symbol : "-");

    if (anon != MAP_FAILED) {
        dn_usym_resolve(u, me, (uint64_t)(uintptr_t)anon + 8, 0, &f);
        CHECK(f.status == DN_USYM_ANON && !f.symbol && f.why, "anonymous: %d", f.status);
    }
    if (mem != MAP_FAILED) {
        dn_usym_resolve(u, me, (uint64_t)(uintptr_t)mem + 8, 0, &f);
        CHECK(f.status == DN_USYM_MEMFD && !f.symbol, "memfd: %d", f.status);
    }
    if (del != MAP_FAILED) {
        dn_usym_resolve(u, me, (uint64_t)(uintptr_t)del + 8, 0, &f);
        CHECK(f.status == DN_USYM_DELETED && !f.symbol, "deleted: %d", f.status);
    }
    dn_usym_resolve(u, me, 16, 16, &f);
    CHECK(f.status == DN_USYM_UNMAPPED && !f.symbol, "unmapped: %d", f.status);
    if (sp != MAP_FAILED) {
        dn_usym_resolve(u, me, (uint64_t)(uintptr_t)sp + 8, 0, &f);
        CHECK(f.module && strcmp(f.module, strrchr(spaced, '/') + 1) == 0 && !f.symbol,
              "path with spaces: module %s", f.module ? f.module : "-");
        munmap(sp, 4096);
    }
    if (many != MAP_FAILED) {
        dn_usym_resolve(u, me, (uint64_t)(uintptr_t)many + (NMAPS - 2) * 4096 + 8, 0, &f);
        CHECK(f.status == DN_USYM_ANON, "last of %d mappings: %d", NMAPS, f.status);
        dn_usym_resolve(u, me, (uint64_t)(uintptr_t)many + (NMAPS - 1) * 4096 + 8, 0, &f);
        CHECK(f.status == DN_USYM_UNMAPPED, "not code: %d", f.status);
        munmap(many, NMAPS * 4096);
    }
    if (sfd >= 0) {
        unlink(spaced);
        close(sfd);
    }

    /* a process that is gone keeps the maps read before */
    CHECK(dn_usym_read_maps(u, 0x3fffff00) < 0, "no such process");
    dn_usym_forget(u, me);
    dn_usym_resolve(u, me, fn, fn, &f);
    CHECK(f.status == DN_USYM_NO_MAPS, "forgotten");

    if (anon != MAP_FAILED)
        munmap(anon, 4096);
    if (mem != MAP_FAILED)
        munmap(mem, 4096);
    if (del != MAP_FAILED)
        munmap(del, 4096);
    if (mfd >= 0)
        close(mfd);
    if (dfd >= 0)
        close(dfd);
    dn_usym_free(u);
}

static void test_kallsyms(void)
{
    FILE *f = fopen("/proc/kallsyms", "r");
    char line[512];
    unsigned long long addr = 0;
    while (f && fgets(line, sizeof line, f)) {
        char type, name[256];
        if (sscanf(line, "%llx %c %255s", &addr, &type, name) == 3 && strcmp(name, "schedule") == 0)
            break;
        addr = 0;
    }
    if (f)
        fclose(f);
    const char *why;
    if (!addr) {
        const char *n = dn_kallsyms_lookup(0xffffffff81000000ULL, &why);
        CHECK(!n && why, "hidden kallsyms explained");
        return;
    }
    const char *n = dn_kallsyms_lookup(addr + 1, &why);
    CHECK(n && strcmp(n, "schedule") == 0, "schedule+1: %s", n ? n : why);
}

/* dn_bpf_delete_keys on a real hash map: 100 keys in, 60 asked to go (5 of them never
 * there, which stops a batch call midway), exactly the other 40 left. */
static void test_delete_keys(void)
{
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "dn_test_del", sizeof(uint64_t), sizeof(uint64_t),
                            256, NULL);
    if (fd < 0) {
        CHECK(!getenv("DENET_REQUIRE_EBPF"), "creating a BPF hash map: %s", strerror(errno));
        printf("offcpu: delete test skipped: no BPF map (%s)\n", strerror(errno));
        return;
    }
    for (uint64_t k = 0; k < 100; k++)
        CHECK(bpf_map_update_elem(fd, &k, &k, BPF_ANY) == 0, "insert %llu", (unsigned long long)k);
    uint64_t del[60];
    for (int i = 0; i < 55; i++)
        del[i] = (uint64_t)i * 100 / 55; /* 0..98, spread */
    for (int i = 55; i < 60; i++)
        del[i] = 1000 + (uint64_t)i;     /* absent */
    uint64_t tmp = del[10]; /* an absent key in the middle of the batch */
    del[10] = del[57];
    del[57] = tmp;
    CHECK(dn_bpf_delete_keys(fd, del, 60, sizeof del[0]) == 0, "delete");
    int left = 0, wrong = 0;
    for (uint64_t k = 0; k < 100; k++) {
        uint64_t v;
        bool asked = false;
        for (int i = 0; i < 60; i++)
            asked |= del[i] == k;
        bool there = bpf_map_lookup_elem(fd, &k, &v) == 0;
        left += there;
        wrong += there == asked;
    }
    CHECK(left == 45 && wrong == 0, "after deleting: %d left, %d wrong", left, wrong);
    CHECK(dn_bpf_delete_keys(fd, del, 0, sizeof del[0]) == 0, "nothing to delete");
    close(fd);
}

/* A whole session with the profiler, from C alone (so AddressSanitizer's leak checker
 * sees every path: snapshots shared by samples, detach, folded text, teardown).
 * Needs eBPF: skipped with a note without it. The syscall counter is left out (opts
 * without .syscalls), so this is also the path of syscalls=False. */
static void test_session_offcpu(void)
{
    struct dn_session_opts o = {.base_ms = 20, .max_ms = 20, .include_children = true,
                                .store_in_memory = true, .enable_ebpf = true, .offcpu = true,
                                .offcpu_stacks = true};
    struct dn_session s;
    dn_session_init(&s, &o);
    char err[512];
    if (dn_session_open_ebpf(&s, err, sizeof err) != 0 || s.offcpu_error) {
        printf("offcpu: session test skipped: %s\n", s.offcpu_error ? s.offcpu_error : err);
        dn_session_destroy(&s);
        return;
    }
    char exe[4096];
    char *const argv[] = {"sleep", "0.3", NULL};
    CHECK(dn_resolve_executable("sleep", NULL, exe, sizeof exe) == 0, "sleep on PATH");
    struct dn_spawn_opts so = {.path = exe, .argv = argv, .stdout_fd = -1, .stderr_fd = -1};
    int child_errno;
    enum dn_spawn_stage stage;
    CHECK(dn_session_spawn(&s, &so, &child_errno, &stage) == 0, "spawn");
    if (dn_session_begin(&s, dn_boottime_secs(), 0) == -ESRCH)
        dn_session_mark_gone(&s);
    dn_session_start(&s);
    while (!dn_session_wait_gone(&s, 100))
        ;
    CHECK(dn_session_stop(&s) == 0, "stop");
    struct dn_summary sum;
    struct dn_ebpf_sample *e;
    dn_session_summary(&s, &sum, &e);
    CHECK(e && e->offcpu && e->offcpu->total_ns >= 250000000ULL,
          "sleep 0.3 off the CPU for %.3f s", e && e->offcpu ? e->offcpu->total_ns / 1e9 : -1.0);
    CHECK(e && e->offcpu && e->offcpu->nstacks >= 1 && e->offcpu->stacks[0].wait == DN_WAIT_SLEEP,
          "the heaviest stack is the sleep");
    dn_ebpf_sample_free(e);
    dn_summary_clear(&sum);
    struct dn_sample *v;
    size_t n;
    CHECK(dn_session_copy_samples(&s, &v, &n) == 0 && n >= 2, "samples");
    dn_sample_array_free(v, n);
    char *text = NULL;
    size_t len = 0;
    CHECK(dn_session_offcpu_folded(&s, &text, &len) == 0 && text && strstr(text, "nanosleep"),
          "folded: %s", text ? text : "-");
    free(text);
    dn_session_destroy(&s);
}

int main(void)
{
    test_classify();
    test_verdict();
    test_htab();
    test_arena();
    test_usym();
    test_delete_keys();
    test_kallsyms();
    test_session_offcpu();
    printf("offcpu: %d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
